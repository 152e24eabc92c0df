"""NRI training speed: iterations per second and CPU seconds per iteration of the training step.

Times ``--iterations`` steps (after ``--warmup`` untimed ones) of the quick (hidden 64, batch 32)
or the full (hidden 256, batch 128) setting on the first training samples, without validation.
Wall-clock it/s depends on what else the machine runs; the process's CPU time per iteration
(single-threaded) much less, so both are printed, with the load average before and after.

    OMP_NUM_THREADS=1 taskset -c 1 python -m benchmarks.nri_speed --setting quick --iterations 200

It times whichever ``examples.nri`` is on the path: the current step (``examples/nri/step.py``,
``--compile`` for the captured one) or, for an older checkout without it, that checkout's loop
body (model, loss, backward, Adam, with the estimator's NaN checks on as its CPU runs had them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from examples.common import HelpFormatter

SETTINGS = {"quick": {"hidden": 64, "batch_size": 32, "lr": 5e-4}, "full": {"hidden": 256, "batch_size": 128}}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.nri_speed", description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="quick", help="model size and batch")
    parser.add_argument("--iterations", type=int, default=200, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--data-dir", default="data-small", help="generated NRI data")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--compile", action="store_true", help="time the compiled step")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch is imported
    _parser().parse_args()


import torch

from examples.nri.data import load_split
from examples.nri.train import Config, Model, _batch


def _step_function(config: Config, device: str, compiled: bool):
    torch.manual_seed(0)
    generator = torch.Generator(device=device).manual_seed(0)
    try:
        from examples.nri.step import TrainStep
    except ImportError:  # a checkout from before step.py: its own loop body
        model = Model(config, generator, check_finite=not device.startswith("cuda")).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

        def step(x):
            terms = model(x)
            loss = (terms["nll"] + terms["kl"]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.detach()

        return step, "before step.py"
    model = Model(config, generator, check_finite=False).to(device)
    step = TrainStep(model, list(model.parameters()), config.lr, device, compiled)
    if compiled:
        model.tree.solver.compile()
    return step, "step.py" + (" --compile" if compiled else "")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    config = Config(**SETTINGS[args.setting])
    split = load_split(args.data_dir, "train", config.timesteps).to(args.device)
    step, code = _step_function(config, args.device, args.compile)
    for i in range(args.warmup):
        step(_batch(split, i, config.batch_size))
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    sync()
    load_before = os.getloadavg()
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(args.warmup, args.warmup + args.iterations):
        step(_batch(split, i, config.batch_size))
    sync()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    result = {
        "setting": args.setting,
        "code": code,
        "device": args.device,
        "iterations": args.iterations,
        "it_per_s": round(args.iterations / wall, 3),
        "cpu_s_per_it": round(cpu / args.iterations, 4),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Warcraft training epoch: where the time goes, fp32 against bf16, and the compute bound.

Run from the repository root on generated data (``python -m examples.warcraft generate``)::

    python -m benchmarks.warcraft_epoch                       # 40 steps per precision, 3 interleaved rounds
    python -m benchmarks.warcraft_epoch --maps 10000 --rounds 1   # one whole 12x12 training epoch each

Each round trains the same model (one initial state) for the same batches once per precision,
in alternating order, and times the parts of a step: assembling the batch, the network's forward
and backward pass, the solver calls (the forward MAP and the estimator's backward ones, measured by
a wrapper), the optimiser step, and afterwards the validation pass over the validation split. The
medians over rounds are printed with the bf16 / fp32 ratio. The FLOPs of one map's forward and
backward pass are counted with ``torch.utils.flop_counter`` and set against a nominal peak of
``cores × FLOP/cycle × clock`` (``--flop-per-cycle`` and ``--ghz``; the defaults are a Zen 4 core's
two 256-bit FMA pipes, 32 fp32 FLOP per cycle, at the clock in /proc/cpuinfo; AVX-512 BF16 dot
products do twice as many). The method is AIMLE with the quick demo's settings (the solver share is
about the same for every method: one or two extra solver calls per step).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

from examples.common import HelpFormatter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.warcraft_epoch", description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--data-dir", default="data", help="root of the generated maps (default data)")
    parser.add_argument("--size", type=int, default=12, help="map size (12, 18, 24 or 30)")
    parser.add_argument("--maps", type=int, default=2800, help="training maps per timed epoch (default 2800)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--flop-per-cycle", type=float, default=32.0, help="fp32 FLOP per cycle per core")
    parser.add_argument("--ghz", type=float, default=None, help="clock for the nominal peak (default /proc/cpuinfo)")
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch is imported
    _parser().parse_args()


import torch
from torch.utils.flop_counter import FlopCounterMode

import difftools
from examples.warcraft.data import channel_statistics, load_split
from examples.warcraft.model import CombResNet18
from examples.warcraft.train import PRECISIONS, Maps, TimedSolver, TrainConfig, build_method, network_costs, predict


def _clock_ghz() -> float:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) / 1000
    except OSError:
        pass
    return 2.5


def flops_per_map(model: torch.nn.Module, images: torch.Tensor) -> float:
    """FLOPs of one forward + backward pass of the network, per map."""
    model = copy.deepcopy(model)
    with FlopCounterMode(display=False) as counter:
        model(images).sum().backward()
    return counter.get_total_flops() / len(images)


def run_epoch(model, layer_loss, optimizer, maps, order, batch_size, precision, solver) -> dict[str, float]:
    """One pass over ``order`` in batches; seconds per part."""
    parts = {"data": 0.0, "network+loss": 0.0, "optimiser": 0.0}
    solver.seconds = 0.0
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        t0 = time.perf_counter()
        batch = maps.batch(order[start : start + batch_size], torch.device("cpu"))
        t1 = time.perf_counter()
        loss = layer_loss(network_costs(model, batch["images"], precision), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        parts["data"] += t1 - t0
        parts["network+loss"] += t2 - t1
        parts["optimiser"] += t3 - t2
    parts["total"] = time.perf_counter() - started
    parts["solver"] = solver.seconds
    parts["network"] = parts.pop("network+loss") - solver.seconds  # forward, backward and the loss itself
    return parts


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    split = load_split(args.data_dir, args.size, "train")
    mean, std = channel_statistics(split.maps[: args.maps])
    maps = Maps(split, mean, std, args.maps)
    val = Maps(load_split(args.data_dir, args.size, "val"), mean, std)
    config = TrainConfig(size=args.size, noise="none", target_nnz=16.0, aimle_step=1e-2)
    torch.manual_seed(0)
    initial = CombResNet18(args.size).to(memory_format=torch.channels_last).state_dict()
    order = torch.randperm(len(maps), generator=torch.Generator().manual_seed(0))

    results: dict[str, list[dict[str, float]]] = {p: [] for p in PRECISIONS}
    for round_ in range(args.rounds):
        for precision in PRECISIONS if round_ % 2 == 0 else PRECISIONS[::-1]:
            model = CombResNet18(args.size).to(memory_format=torch.channels_last)
            model.load_state_dict(initial)
            solver = TimedSolver(difftools.get_solver("grid_shortest_path"))
            layer, loss = build_method(config, solver, torch.Generator().manual_seed(0))
            optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
            parts = run_epoch(model, loss, optimizer, maps, order, config.batch_size, precision, solver)
            started = time.perf_counter()
            predict(model, val, solver.solver, torch.device("cpu"), precision=precision)
            parts["validation"] = time.perf_counter() - started
            results[precision].append(parts)
            print(
                f"round {round_ + 1} {precision}: " + ", ".join(f"{k} {v:.2f}s" for k, v in parts.items()), flush=True
            )

    images = maps.batch(torch.arange(min(8, len(maps))), torch.device("cpu"))["images"]
    flops = flops_per_map(CombResNet18(args.size).to(memory_format=torch.channels_last), images)
    ghz = args.ghz or _clock_ghz()
    cores = min(threads, os.cpu_count() or threads)
    peak = {"fp32": cores * args.flop_per_cycle * ghz * 1e9}
    peak["bf16"] = 2 * peak["fp32"]
    steps = -(-len(maps) // config.batch_size)

    print(f"\n{len(maps)} maps ({steps} steps of {config.batch_size}), {len(val)} validation maps, {threads} threads")
    print(f"network forward + backward: {flops / 1e9:.3f} GFLOP per map (torch.utils.flop_counter)")
    keys = ["total", "network", "solver", "data", "optimiser", "validation"]
    print("| precision | " + " | ".join(f"{k} (s)" for k in keys) + " | s/step | network GFLOP/s | of nominal peak |")
    print("|---" * (len(keys) + 4) + "|")
    medians = {}
    for precision in PRECISIONS:
        med = {k: statistics.median(r[k] for r in results[precision]) for k in keys}
        medians[precision] = med
        rate = flops * len(maps) / med["network"]
        print(
            f"| {precision} | " + " | ".join(f"{med[k]:.2f}" for k in keys) + f" | {med['total'] / steps:.3f} | "
            f"{rate / 1e9:.0f} | {100 * rate / peak[precision]:.0f}% of {peak[precision] / 1e9:.0f} |"
        )
    print(f"\nbf16 / fp32 training-epoch time: {medians['bf16']['total'] / medians['fp32']['total']:.2f}")
    print(f"bf16 / fp32 network time:        {medians['bf16']['network'] / medians['fp32']['network']:.2f}")
    full_steps = -(-10_000 // config.batch_size)
    for precision in PRECISIONS:
        validation = medians[precision]["validation"] * 1000 / len(val)  # the recipe validates on 1,000 maps
        epoch = medians[precision]["total"] / steps * full_steps + validation
        print(f"{precision}: a 10,000-map epoch with validation ≈ {epoch:.0f} s; 50 epochs ≈ {50 * epoch / 60:.0f} min")


if __name__ == "__main__":
    main()

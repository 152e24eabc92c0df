"""The PyEPO tutorial (docs/tutorials/pyepo.md) at full size: PyEPO's shortest-path benchmark regrets.

Run ``python -m benchmarks.pyepo_tutorial``. It executes the page's own code blocks with the
small sizes the test suite uses replaced by PyEPO's usual ones (1000 training and 1000 test
instances, 20 epochs), and prints the regret table that the page shows.
"""

from __future__ import annotations

import argparse
import os
import time

from examples.common import HelpFormatter
from tests.markdown import python_blocks

PAGE = "docs/tutorials/pyepo.md"
SMALL = "num_train, num_test, epochs = 100, 100, 3"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pyepo_tutorial", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--train", type=int, default=1000, help="training instances")
    parser.add_argument("--test", type=int, default=1000, help="test instances")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs")
    return parser


def main() -> None:
    args = _parser().parse_args()
    blocks = python_blocks(PAGE)
    if not any(SMALL in block for block in blocks):
        raise SystemExit(f"{PAGE} no longer sets its sizes with {SMALL!r}; update this script")
    full = f"num_train, num_test, epochs = {args.train}, {args.test}, {args.epochs}"
    namespace: dict = {"__name__": "__pyepo_tutorial__"}
    print(f"load average before {os.getloadavg()[0]:.2f}")
    start = time.perf_counter()
    for i, block in enumerate(blocks):
        exec(compile(block.replace(SMALL, full), f"{PAGE}[block {i}]", "exec"), namespace)
    print(f"\n{args.train} train / {args.test} test, {args.epochs} epochs, {time.perf_counter() - start:.0f} s in all")
    print(f"load average after {os.getloadavg()[0]:.2f}\n")
    regrets = namespace["regrets"]
    gap = abs(regrets["SPO+ (difftools, bridge)"] - regrets["SPO+ (PyEPO)"])
    print(f"|SPO+ through the bridge − PyEPO's SPO+| = {gap:.3g} (normalised regret)\n")
    print("| method | normalised test regret |\n|---|---|")
    for name, value in regrets.items():
        print(f"| {name} | {value:.6f} |")


if __name__ == "__main__":
    main()

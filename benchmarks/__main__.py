"""Run the benchmark suite: `python -m benchmarks [--quick|--full] [--only NAME ...]`.

Every `benchmarks/bench_*.py` exposes `run(quick: bool) -> dict`; each writes its JSON under
benchmarks/results/ and refreshes its own section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time

import benchmarks


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", default=True, help="minutes on a 2-core CPU (default)")
    mode.add_argument("--full", action="store_true", help="larger sizes and more repeats (for a GPU machine)")
    parser.add_argument("--only", nargs="+", default=None, help=f"subset of: {', '.join(discover())}")
    args = parser.parse_args(argv)
    names = discover() if not args.only else [n if n.startswith("bench_") else f"bench_{n}" for n in args.only]
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {discover()}")
    for name in names:
        start = time.perf_counter()
        print(f"== {name}", file=sys.stderr)
        importlib.import_module(f"benchmarks.{name}").run(quick=not args.full)
        print(f"== {name} done in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench``: run the benchmark, print the tables, write the JSON.

    python -m bench [--backend memory|real|both] [--workload w1|w2|w3|all]
                    [--repeat N] [--warmup N] [--json PATH] [--quick]

Progress goes to stderr, the report to stdout. Exit status 1 when a workload failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.report import BenchRun, render, write_json
from bench.suite import BACKENDS, Options, parse_choice, run_all
from bench.workloads import WORKLOADS, Sizes

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
QUICK_REPEAT = 2
QUICK_WARMUP = 1
QUICK_SIZES = Sizes()
"""--quick keeps DESIGN §9's sizes: they already run in seconds; only repetitions drop."""


def parser() -> argparse.ArgumentParser:
    summary = (__doc__ or "").strip().splitlines()[:1]
    p = argparse.ArgumentParser(prog="python -m bench", description=" ".join(summary))
    p.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    p.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (default 5; quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 1)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    p.add_argument("--quick", action="store_true", help="fewer runs and smaller sizes")
    p.add_argument("--timeout-scale", type=float, default=1.0, help="multiply run timeouts")
    p.add_argument(
        "--no-events-off",
        action="store_true",
        help="skip the extra memory W3 run with node events turned off",
    )
    return p


def options_from(args: argparse.Namespace) -> Options:
    repeat = args.repeat if args.repeat is not None else (QUICK_REPEAT if args.quick else 5)
    warmup = args.warmup if args.warmup is not None else QUICK_WARMUP
    if repeat < 1 or warmup < 0:
        raise ValueError("--repeat must be at least 1 and --warmup at least 0")
    options = Options(
        backends=parse_choice(args.backend, BACKENDS, "both"),
        workloads=parse_choice(args.workload, WORKLOADS, "all"),
        repeat=repeat,
        warmup=warmup,
        quick=args.quick,
        timeout_scale=args.timeout_scale,
        events_off=not args.no_events_off,
    )
    if args.quick:
        options = replace(options, sizes=QUICK_SIZES)
    return options


async def _main(options: Options) -> BenchRun:
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main is not None:  # SIGTERM cleans up like Ctrl-C does
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        return await run_all(options)
    finally:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run = asyncio.run(_main(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; processes stopped and namespace removed", file=sys.stderr)
        return 130
    print(render(run))
    write_json(run, args.json)
    print(f"\nJSON: {args.json}")
    failed = any(r.error for r in run.results) or (run.floor is not None and run.floor.error)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m bench``: run the benchmark, print the tables, write the JSON.

    python -m bench [--backend memory|real|both] [--workload w1|w2|w3|all]
                    [--repeat N] [--warmup N] [--json PATH] [--quick]
    python -m bench --soak MINUTES [--soak-interval SECONDS] [--warmup N] [--json PATH]

Progress goes to stderr, the report to stdout. Exit status 1 when a workload failed.
``--soak`` runs real W3 back to back instead and samples the processes' RSS
(:mod:`bench.soak`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from bench.report import render, write_json
from bench.soak import DEFAULT_INTERVAL, SoakOptions, render_soak, run_soak, write_soak_json
from bench.suite import BACKENDS, Options, parse_choice, run_all
from bench.workloads import WORKLOADS, Sizes

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_JSON = RESULTS / "latest.json"
SOAK_JSON = RESULTS / "soak.json"
QUICK_REPEAT = 2
QUICK_WARMUP = 1
QUICK_SIZES = Sizes()
"""--quick keeps DESIGN §9's sizes: they already run in seconds; only repetitions drop."""
T = TypeVar("T")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number greater than 0")
    return value


def parser() -> argparse.ArgumentParser:
    summary = (__doc__ or "").strip().splitlines()[:1]
    p = argparse.ArgumentParser(prog="python -m bench", description=" ".join(summary))
    p.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    p.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    p.add_argument("--repeat", type=int, default=None, help="timed runs (default 5; quick 2)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 1)")
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help=f"where to write results (default {DEFAULT_JSON.name}; soak {SOAK_JSON.name}, "
        "in bench/results/)",
    )
    p.add_argument("--quick", action="store_true", help="fewer runs and smaller sizes")
    p.add_argument("--timeout-scale", type=float, default=1.0, help="multiply run timeouts")
    p.add_argument(
        "--no-events-off",
        action="store_true",
        help="skip the extra W3 runs with node events turned off (memory and real backends)",
    )
    p.add_argument(
        "--soak",
        type=_positive,
        metavar="MINUTES",
        help="instead: run real W3 back to back for MINUTES and sample the RSS of the "
        "orchestrator and the worker (honours --warmup, --timeout-scale, --json)",
    )
    p.add_argument(
        "--soak-interval",
        type=_positive,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"seconds between RSS samples during a soak (default {DEFAULT_INTERVAL:g})",
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


def soak_options_from(args: argparse.Namespace) -> SoakOptions:
    return SoakOptions(
        minutes=args.soak,
        interval=args.soak_interval,
        warmup=args.warmup if args.warmup is not None else QUICK_WARMUP,
        timeout_scale=args.timeout_scale,
    )


async def _main(work: Awaitable[T]) -> T:
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if main is not None:  # SIGTERM cleans up like Ctrl-C does
        loop.add_signal_handler(signal.SIGTERM, main.cancel)
    try:
        return await work
    finally:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGTERM)


def _run_and_report(
    work: Coroutine[Any, Any, T],
    render_result: Callable[[T], str],
    write_result: Callable[[T, Path], None],
    path: Path,
) -> T | None:
    """Run ``work`` (Ctrl-C / SIGTERM clean up), print its report, write its JSON;
    None when it was interrupted."""
    try:
        result = asyncio.run(_main(work))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; processes stopped and namespace removed", file=sys.stderr)
        return None
    print(render_result(result))
    write_result(result, path)
    print(f"\nJSON: {path}")
    return result


def soak(args: argparse.Namespace) -> int:
    try:
        options = soak_options_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = _run_and_report(
        run_soak(options), render_soak, write_soak_json, args.json or SOAK_JSON
    )
    if result is None:
        return 130
    return 1 if result.error else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.soak is not None:
        return soak(args)
    try:
        options = options_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = _run_and_report(run_all(options), render, write_json, args.json or DEFAULT_JSON)
    if run is None:
        return 130
    failed = any(r.error for r in run.results) or (run.floor is not None and run.floor.error)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

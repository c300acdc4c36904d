"""``python -m bench``: run the benchmark, print the tables, write the JSON.

    python -m bench [--backend memory|real|both] [--workload w1,w2,...|all|scale|every]
                    [--repeat N] [--warmup N] [--json PATH] [--quick] [--peers celery]
                    [--w4-sizes N,N,..] [--w5-items N,N,..] [--w5-concurrency N]
                    [--scale-repeat N] [--plot PATH]
    python -m bench --soak MINUTES [--soak-interval SECONDS] [--warmup N] [--json PATH]
    python -m bench --chaos [--chaos-executions N] [--chaos-at FRACTION] [--json PATH]

Progress goes to stderr, the report to stdout. Exit status 1 when a workload failed.
``--soak`` runs real W3 back to back instead and samples the processes' RSS
(:mod:`bench.soak`); ``--chaos`` kills a worker and an orchestrator mid-W3 and times
the recovery (:mod:`bench.chaos`); ``--peers celery`` also deploys Celery and prints
SPANE / Celery ratios (:mod:`bench.celery_run`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from bench.chaos import ChaosOptions, ChaosResult, chaos_document, render_chaos, run_chaos
from bench.peers import PEERS
from bench.report import render, write_json
from bench.scale import QUICK_SCALE, ScaleSizes
from bench.soak import DEFAULT_INTERVAL, SoakOptions, render_soak, run_soak, write_soak_json
from bench.suite import BACKENDS, WORKLOAD_SETS, Options, parse_choice, parse_workloads, run_all
from bench.workloads import Sizes

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_JSON = RESULTS / "latest.json"
SOAK_JSON = RESULTS / "soak.json"
CHAOS_JSON = RESULTS / "chaos.json"
DEFAULT_PLOT = RESULTS / "scale.png"
CHAOS_DEFAULTS = ChaosOptions()
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


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of integers") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give sizes of at least 1, comma-separated")
    return sizes


def _peers(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    unknown = [peer for peer in chosen if peer not in PEERS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"{text!r}: known peers are {', '.join(PEERS)}")
    return chosen


def parser() -> argparse.ArgumentParser:
    summary = (__doc__ or "").strip().splitlines()[:1]
    p = argparse.ArgumentParser(prog="python -m bench", description=" ".join(summary))
    p.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    p.add_argument(
        "--workload",
        default="all",
        help="comma-separated w1..w5, or "
        + ", ".join(f"{name} ({'+'.join(keys)})" for name, keys in WORKLOAD_SETS.items())
        + "; default all. W4 size and W5 loop: per-node / per-item cost against size",
    )
    p.add_argument(
        "--peers",
        type=_peers,
        default=(),
        metavar="celery",
        help="also deploy these engines on the same servers in the same run and print "
        "SPANE / peer ratios for W1-W3 (celery: a prefork worker with -c equal to SPANE's "
        "worker concurrency, chain / chord / group; needs the bench extra)",
    )
    default_scale = ScaleSizes()
    p.add_argument(
        "--w4-sizes",
        type=_sizes,
        default=None,
        metavar="N,N,..",
        help=f"W4 chain and fan-out sizes (default {_join(default_scale.w4)}; "
        f"quick {_join(QUICK_SCALE.w4)})",
    )
    p.add_argument(
        "--w5-items",
        type=_sizes,
        default=None,
        metavar="N,N,..",
        help=f"W5 for_each item counts (default {_join(default_scale.w5)}; "
        f"quick {_join(QUICK_SCALE.w5)})",
    )
    p.add_argument(
        "--w5-concurrency",
        type=int,
        default=default_scale.w5_concurrency,
        help=f"W5 for_each concurrency (default {default_scale.w5_concurrency})",
    )
    p.add_argument(
        "--scale-repeat",
        type=int,
        default=default_scale.repeat,
        help=f"timed repetitions of W4 and W5, each over every size "
        f"(default {default_scale.repeat})",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"where to write the W4/W5 plot, a PNG (default {DEFAULT_PLOT.name} in "
        "bench/results/ when W4 or W5 ran; needs matplotlib)",
    )
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
        "--chaos",
        action="store_true",
        help="instead: on a real deployment of 2 orchestrators and 2 workers, kill -9 one "
        "of each mid-W3 and report kill -> all executions finished, outputs checked",
    )
    p.add_argument(
        "--chaos-executions",
        type=int,
        default=CHAOS_DEFAULTS.executions,
        metavar="N",
        help="concurrent diamond executions of the chaos run "
        f"(default {CHAOS_DEFAULTS.executions})",
    )
    p.add_argument(
        "--chaos-at",
        type=float,
        default=CHAOS_DEFAULTS.kill_at,
        metavar="FRACTION",
        help="kill when this share of the executions has finished "
        f"(default {CHAOS_DEFAULTS.kill_at})",
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
        workloads=parse_workloads(args.workload),
        repeat=repeat,
        warmup=warmup,
        quick=args.quick,
        timeout_scale=args.timeout_scale,
        events_off=not args.no_events_off,
        scale=scale_from(args),
        peers=tuple(args.peers),
    )
    if args.quick:
        options = replace(options, sizes=QUICK_SIZES)
    if any(key in options.workloads for key in ("w4", "w5")):
        options = replace(options, plot=args.plot or DEFAULT_PLOT)
    return options


def _join(sizes: Sequence[int]) -> str:
    return ",".join(str(size) for size in sizes)


def scale_from(args: argparse.Namespace) -> ScaleSizes:
    """W4/W5 sizes: the flags, else the quick or the full defaults."""
    base = QUICK_SCALE if args.quick else ScaleSizes()
    if args.w5_concurrency < 1 or args.scale_repeat < 1:
        raise ValueError("--w5-concurrency and --scale-repeat must be at least 1")
    return ScaleSizes(
        w4=args.w4_sizes or base.w4,
        w5=args.w5_items or base.w5,
        w5_concurrency=args.w5_concurrency,
        repeat=args.scale_repeat,
    )


def chaos_options_from(args: argparse.Namespace) -> ChaosOptions:
    return ChaosOptions(executions=args.chaos_executions, kill_at=args.chaos_at)


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


def chaos(args: argparse.Namespace) -> int:
    try:
        options = chaos_options_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = _run_and_report(
        run_chaos(options), render_chaos, _write_chaos, args.json or CHAOS_JSON
    )
    if result is None:
        return 130
    return 1 if result.error or result.wrong else 0


def _write_chaos(result: ChaosResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(chaos_document(result), indent=2, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.soak is not None:
        return soak(args)
    if args.chaos:
        return chaos(args)
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

"""The soak mode's arithmetic and report: slope, verdict, summary, table, JSON, options.

Pure: nothing here deploys, runs a workload or looks at a clock; the samples are made up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import SOAK_JSON, parser, soak_options_from
from bench.report import W3_NODES, Summary
from bench.soak import (
    GROWTH_LIMIT,
    SLOPE_LIMIT,
    MemoryTrend,
    Phase,
    RssSample,
    SoakOptions,
    SoakResult,
    SoakRun,
    Verdict,
    memory_trend,
    memory_trends,
    rate_summary,
    render_soak,
    slope_mib_per_min,
    soak_document,
    verdict_line,
    write_soak_json,
)

MIB = 1024


def _sample(t_s: float, phase: Phase = Phase.INTERVAL, **rss: int | None) -> RssSample:
    return RssSample(t_s, 1_700_000_000 + t_s, phase, dict(rss))


def _result(error: str | None = None) -> SoakResult:
    """Orchestrator flat after a warm-up jump; worker climbing 1 MiB a minute."""
    samples = [
        _sample(5, Phase.WARMUP, orchestrator=60 * MIB, worker=50 * MIB),
        _sample(10, Phase.START, orchestrator=80 * MIB, worker=50 * MIB),
        _sample(70, orchestrator=81 * MIB, worker=51 * MIB),
        _sample(130, Phase.RUN, orchestrator=80 * MIB, worker=52 * MIB),
    ]
    runs = [
        SoakRun(1, 10.0, {W3_NODES: 200.0}, {"total_s": 10.0}),
        SoakRun(2, 70.0, {W3_NODES: 100.0}, {"total_s": 20.0}),
        SoakRun(3, 100.0, {W3_NODES: 300.0}, {"total_s": 6.7}),
    ]
    return SoakResult(
        SoakOptions(minutes=2, interval=60),
        title="W3 200 x 10-node diamond",
        runs=runs,
        samples=samples,
        error=error,
        wall_s=135.0,
        cpu={"busy": 0.9, "ours": 0.5, "servers": 0.2, "others": 0.2},
    )


# -------------------------------------------------------------------- slope
@pytest.mark.parametrize(
    ("points", "slope"),
    [
        ([(0, 0), (60, MIB)], 1.0),
        ([(0, 5 * MIB), (60, 5 * MIB), (120, 5 * MIB)], 0.0),
        ([(0, 2 * MIB), (30, MIB)], -2.0),
        ([(0, 0), (60, 0), (120, 3 * MIB)], 1.5),  # least squares, not end minus start
        ([(120, 3 * MIB), (0, 0), (60, 0)], 1.5),  # order does not matter
        ([(0, 80 * MIB)], None),
        ([(7, MIB), (7, 2 * MIB)], None),
        ([], None),
    ],
)
def test_slope_is_least_squares_in_mib_per_minute(
    points: list[tuple[float, float]], slope: float | None
) -> None:
    result = slope_mib_per_min(points)
    assert result == (None if slope is None else pytest.approx(slope))


# ------------------------------------------------------------------ verdict
@pytest.mark.parametrize(
    ("start", "end", "slope", "verdict"),
    [
        (100_000, 100_000, 0.0, Verdict.FLAT),
        (100_000, 104_900, 0.49, Verdict.FLAT),
        (100_000, 90_000, -3.0, Verdict.FLAT),  # shrinking is flat
        (100_000, 105_000, 0.0, Verdict.GROWING),  # 5 % is not under 5 %
        (100_000, 100_000, 0.5, Verdict.GROWING),  # nor 0.5 MiB/min under 0.5
        (100_000, 120_000, 0.1, Verdict.GROWING),
        (100_000, 100_000, None, Verdict.UNKNOWN),
    ],
)
def test_verdict_needs_growth_and_slope_under_their_limits(
    start: int, end: int, slope: float | None, verdict: Verdict
) -> None:
    trend = MemoryTrend("orchestrator", start, end, max(start, end), slope, 2)
    assert trend.verdict is verdict


def test_the_limits_are_the_ones_the_report_states() -> None:
    assert (GROWTH_LIMIT, SLOPE_LIMIT) == (0.05, 0.5)
    assert "flat means end RSS < 5% above start and slope < 0.5 MiB/min" in render_soak(_result())


def test_growth_is_end_over_start() -> None:
    trend = MemoryTrend("worker", 80 * MIB, 84 * MIB, 90 * MIB, 0.1, 3)
    assert trend.growth == pytest.approx(0.05)
    assert MemoryTrend("worker", 0, 10, 10, 0.0, 2).growth == 0.0


# ------------------------------------------------------------------- trends
def test_trend_starts_after_the_warm_up_and_ends_at_the_last_sample() -> None:
    trend = memory_trend("orchestrator", _result().samples)
    assert trend is not None
    assert (trend.start_kib, trend.end_kib, trend.max_kib) == (80 * MIB, 80 * MIB, 81 * MIB)
    assert trend.samples == 3  # the warm-up sample is left out
    assert trend.slope == pytest.approx(0.0)
    assert trend.verdict is Verdict.FLAT


def test_trend_skips_missing_readings_and_sorts_by_time() -> None:
    samples = [
        _sample(70, orchestrator=82 * MIB),
        _sample(10, Phase.START, orchestrator=80 * MIB),
        _sample(40, orchestrator=None),
    ]
    trend = memory_trend("orchestrator", samples)
    assert trend is not None
    assert (trend.start_kib, trend.end_kib, trend.samples) == (80 * MIB, 82 * MIB, 2)
    assert trend.slope == pytest.approx(2.0)
    assert memory_trend("worker", samples) is None
    assert memory_trend("orchestrator", [_sample(1, Phase.WARMUP, orchestrator=1)]) is None


def test_trends_cover_every_process_in_sample_order() -> None:
    trends = memory_trends(_result())
    assert [t.process for t in trends] == ["orchestrator", "worker"]
    worker = trends[1]
    assert worker.slope == pytest.approx(1.0)
    assert worker.verdict is Verdict.GROWING


def test_rate_summary_is_over_the_measured_runs() -> None:
    assert rate_summary(_result()) == Summary(200.0, 100.0, 300.0, 3)
    empty = _result()
    empty.runs = []
    assert rate_summary(empty) is None


# ----------------------------------------------------------------- report
def test_render_shows_runs_rates_rss_and_a_verdict_per_process() -> None:
    text = render_soak(_result())
    assert "for 2 min on the real backend (RSS every 60 s and after each run)" in text
    assert "runs completed: 3 (after 1 warm-up run(s)); samples: 4; wall time 135 s" in text
    assert "W3 node executions/s     200  100  300  3" in text
    assert "orchestrator       80.0     80.0     81.0  +0.0%   +0.00    flat" in text
    assert "worker             50.0     52.0     52.0  +4.0%   +1.00    growing" in text
    assert (
        "verdict orchestrator: flat (80.0 -> 80.0 MiB (+0.0%), slope +0.00 MiB/min over 3 samples)"
    ) in text
    assert "verdict worker: growing (50.0 -> 52.0 MiB (+4.0%), slope +1.00 MiB/min" in text
    assert "others' cpu during the soak: 20%" in text
    assert "ERROR" not in text
    assert "STOPPED" not in text


def test_render_reports_the_error_that_stopped_the_soak() -> None:
    text = render_soak(_result(error="run 4 timed out"))
    assert "STOPPED EARLY" in text
    assert text.endswith("ERROR: run 4 timed out")


def test_render_without_any_run_or_sample() -> None:
    result = SoakResult(SoakOptions(minutes=1), error="deployment: orchestrator exited with 1")
    text = render_soak(result)
    assert "runs completed: 0" in text
    assert "verdict" not in text
    assert "ERROR: deployment: orchestrator exited with 1" in text


def test_verdict_line_without_a_slope() -> None:
    trend = MemoryTrend("orchestrator", MIB, MIB, MIB, None, 1)
    assert verdict_line(trend) == (
        "verdict orchestrator: unknown (1.0 -> 1.0 MiB (+0.0%), slope n/a over 1 samples)"
    )


def test_json_holds_every_sample_and_run(tmp_path: Path) -> None:
    path = tmp_path / "results" / "soak.json"
    write_soak_json(_result(), path)
    document = json.loads(path.read_text())
    assert document == json.loads(json.dumps(soak_document(_result())))
    assert [s["phase"] for s in document["samples"]] == ["warm-up", "start", "interval", "run"]
    assert document["samples"][1] == {
        "t_s": 10,
        "at": 1_700_000_010,
        "phase": "start",
        "rss_kib": {"orchestrator": 80 * MIB, "worker": 50 * MIB},
    }
    assert [run["values"][W3_NODES] for run in document["runs"]] == [200.0, 100.0, 300.0]
    assert document["node_executions_per_s"]["median"] == 200.0
    assert [m["verdict"] for m in document["memory"]] == ["flat", "growing"]
    assert document["limits"] == {"growth": 0.05, "slope_mib_per_min": 0.5}
    assert document["options"]["minutes"] == 2
    assert document["error"] is None


# ------------------------------------------------------------------ options
def test_soak_option_is_minutes_and_interval_defaults_to_ten_seconds() -> None:
    args = parser().parse_args(["--soak", "1.5"])
    options = soak_options_from(args)
    assert (options.minutes, options.interval, options.warmup) == (1.5, 10.0, 1)
    assert args.json is None  # main() then writes SOAK_JSON
    assert SOAK_JSON.name == "soak.json"
    assert SOAK_JSON.parent.name == "results"
    args = parser().parse_args(["--soak", "10", "--soak-interval", "5", "--warmup", "2"])
    assert soak_options_from(args) == SoakOptions(minutes=10, interval=5, warmup=2)
    assert parser().parse_args([]).soak is None


@pytest.mark.parametrize("value", ["0", "-1", "x", "inf", "nan"])
@pytest.mark.parametrize("option", ["--soak", "--soak-interval"])
def test_soak_options_must_be_finite_and_positive(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args([option, value])
    assert exit_info.value.code == 2
    assert option in capsys.readouterr().err


@pytest.mark.parametrize(("minutes", "interval", "warmup"), [(0, 10, 1), (1, 0, 1), (1, 10, -1)])
def test_soak_options_validate_themselves(minutes: float, interval: float, warmup: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        SoakOptions(minutes=minutes, interval=interval, warmup=warmup)

"""W4 size, W5 loop and the chaos run of the benchmark: their workflows, the pure
figures and tables, one tiny run of each on the embedded engine, and the options."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import DEFAULT_PLOT, chaos_options_from, options_from, parser
from bench.chaos import (
    ChaosOptions,
    ChaosResult,
    chaos_workflow,
    expected_count,
    expected_output,
    render_chaos,
)
from bench.report import Metric, WorkloadResult
from bench.scale import (
    QUICK_SCALE,
    Loop,
    ScaleSizes,
    Size,
    loop_items,
    loop_workflow,
    points,
    scale_table,
    value_bytes_for,
    write_plot,
)
from bench.suite import ALL_WORKLOADS, Options, build, memory_engine, parse_workloads
from bench.tasks import count_step
from bench.workloads import DIAMOND_EDGES
from spane.compiler.compile import compile_plan
from spane.schemas.loader import spec_from_data


# ------------------------------------------------------------------ workflows
def test_the_loop_workflow_is_one_for_each_of_pad_tasks() -> None:
    plan = compile_plan(spec_from_data(loop_workflow("bench-w5-loop", 50)))
    assert list(plan.nodes) == ["loop"]
    assert plan.nodes["loop"].type == "for_each"


def test_loop_items_are_about_a_hundred_bytes() -> None:
    import json

    items = loop_items(1000)
    assert [item["i"] for item in items] == list(range(1000))
    assert 90 <= len(json.dumps(items[500], separators=(",", ":"))) <= 110


def test_the_value_limit_fits_the_largest_loop() -> None:
    assert value_bytes_for(10) == 1024 * 1024
    assert value_bytes_for(10_000) >= 10_000 * 300


def test_chaos_counts_follow_the_diamond() -> None:
    counts = expected_count(DIAMOND_EDGES)
    assert counts["a"] == 1
    assert counts["e"] == 1 + counts["b"] + counts["c"] == 5
    assert counts["j"] == 21
    assert expected_output(7) == {"seed": 7, "n": 21}
    assert count_step({"seed": 3}) == {"seed": 3, "n": 1}
    assert count_step({"seed": 3, "n": 4}) == {"seed": 3, "n": 5}
    assert count_step({"b": {"seed": 3, "n": 2}, "c": {"seed": 3, "n": 2}}) == {"seed": 3, "n": 5}
    with pytest.raises(ValueError, match="disagree"):
        count_step({"b": {"seed": 3, "n": 2}, "c": {"seed": 4, "n": 2}})
    compile_plan(spec_from_data(chaos_workflow()))


# --------------------------------------------------------------- tiny runs
async def test_w4_and_w5_run_once_on_the_memory_engine() -> None:
    options = Options(scale=ScaleSizes(w4=(3, 6), w5=(4, 8), w5_concurrency=2))
    async with memory_engine(max_value_bytes=options.max_value_bytes) as engine:
        for key in ("w4", "w5"):
            workload = build(key, options)
            await workload.prepare(engine)
            warm = await workload.warm_once(engine, timeout=20)
            sample = await workload.run_once(engine, timeout=20)
            assert set(sample.values) == {m.name for m in workload.metrics()}
            assert len(warm.values) < len(sample.values)  # the smallest size only
            assert all(value > 0 for value in sample.values.values())


async def test_the_chaos_diamond_gives_the_expected_output_on_the_memory_engine() -> None:
    async with memory_engine() as engine:
        await engine.register(chaos_workflow())
        result = await engine.run("bench-chaos-diamond", {"seed": 11}, timeout=20)
    assert result.succeeded
    assert result.output == expected_output(11)


def test_scale_workloads_refuse_empty_sizes() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Size((), 1)
    with pytest.raises(ValueError, match="at least 1"):
        Loop((0, 5), 1, 50)


# ------------------------------------------------------------ figures, table
def _scaled() -> list[WorkloadResult]:
    w4 = WorkloadResult(
        "real",
        "w4",
        "W4",
        [
            Metric("chain per node @10", "ms", [2.0, 4.0]),
            Metric("chain per node @2000", "ms", [6.0]),
            Metric("chain largest/smallest", "x", [2.0]),
        ],
    )
    w5 = WorkloadResult("memory", "w5", "W5", [Metric("for_each per item @300", "ms", [0.5])])
    failed = WorkloadResult("real", "w5", "W5", error="timed out")
    return [w4, w5, failed]


def test_points_read_the_per_size_metrics() -> None:
    found = points(_scaled())
    assert [(p.backend, p.series, p.size, p.per_ms) for p in found] == [
        ("real", "chain", 10, 3.0),
        ("real", "chain", 2000, 6.0),
        ("memory", "for_each", 300, 0.5),
    ]


def test_scale_table_gives_the_multiple_of_the_smallest_size() -> None:
    table = scale_table(_scaled())
    assert table is not None
    rows = table.splitlines()[2:]
    assert rows[0].split() == ["real", "W4", "chain", "10", "3.00", "1.00x"]
    assert rows[1].split() == ["real", "W4", "chain", "2,000", "6.00", "2.00x"]
    assert scale_table([]) is None


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "scale.png"
    assert write_plot(_scaled(), path) == str(path)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert write_plot([], tmp_path / "none.png") is None


def test_render_chaos_shows_recovery_and_outputs() -> None:
    result = ChaosResult(ChaosOptions(executions=10), settings={"task_lease": 10, "liveness": 5})
    result.baseline_s, result.recovery_s, result.finished_before_kill = 2.0, 12.5, 5
    result.succeeded = 9
    result.wrong = ["seed 3: output None"]
    text = render_chaos(result)
    line = next(line for line in text.splitlines() if line.startswith("kill -> all"))
    assert line.split()[-2:] == ["12.50", "s"]
    assert "1.00 s" in text  # the baseline's time for the remaining half
    assert "9/10" in text
    assert "wrong: seed 3: output None" in text


# --------------------------------------------------------------------- options
def test_parse_workloads() -> None:
    assert parse_workloads("all") == ("w1", "w2", "w3")
    assert parse_workloads("scale") == ("w4", "w5")
    assert parse_workloads("every") == ALL_WORKLOADS
    assert parse_workloads("w5, W1") == ("w1", "w5")
    with pytest.raises(ValueError, match="not a workload"):
        parse_workloads("w9")
    with pytest.raises(ValueError, match="no workload"):
        parse_workloads(",")


def test_scale_options_default_quick_and_given() -> None:
    full = options_from(parser().parse_args(["--workload", "scale"]))
    assert full.scale == ScaleSizes()
    assert full.plot == DEFAULT_PLOT
    quick = options_from(parser().parse_args(["--workload", "w4", "--quick"]))
    assert quick.scale.w4 == QUICK_SCALE.w4
    assert quick.scale.w5 == QUICK_SCALE.w5
    given = options_from(
        parser().parse_args(
            [
                *("--workload", "w5", "--w5-items", "300,100", "--w5-concurrency", "7"),
                *("--scale-repeat", "2", "--plot", "/tmp/x.png", "--w4-sizes", "5,10"),
            ]
        )
    )
    assert given.scale == ScaleSizes(w4=(5, 10), w5=(100, 300), w5_concurrency=7, repeat=2)
    assert given.plot == Path("/tmp/x.png")
    assert given.max_value_bytes == value_bytes_for(300)
    standard = options_from(parser().parse_args([]))
    assert standard.workloads == ("w1", "w2", "w3")
    assert standard.plot is None
    assert standard.max_value_bytes is None


@pytest.mark.parametrize(
    "argv",
    [["--w4-sizes", "0,10"], ["--w5-items", "ten"], ["--w4-sizes", ""]],
)
def test_bad_sizes_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(argv)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        options_from(parser().parse_args(["--w5-concurrency", "0"]))
    with pytest.raises(ValueError, match="workload"):
        options_from(parser().parse_args(["--workload", "w7"]))


def test_chaos_options() -> None:
    args = parser().parse_args(["--chaos", "--chaos-executions", "20", "--chaos-at", "0.5"])
    assert args.chaos
    assert chaos_options_from(args) == ChaosOptions(executions=20, kill_at=0.5)
    assert chaos_options_from(parser().parse_args(["--chaos"])) == ChaosOptions()
    with pytest.raises(ValueError, match="chaos"):
        chaos_options_from(parser().parse_args(["--chaos", "--chaos-at", "1.5"]))


def test_help_documents_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in (
        "--peers",
        "--workload",
        "--w4-sizes",
        "--w5-items",
        "--w5-concurrency",
        "--scale-repeat",
        "--plot",
        "--chaos",
        "--chaos-executions",
        "--chaos-at",
        "--soak",
    ):
        assert flag in text

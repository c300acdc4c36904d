"""The benchmark harness: workload shapes, the report's formatting, option parsing.

No timing is asserted anywhere: these tests check that the workloads build the graphs
DESIGN §9 describes, that one small run of each produces every metric, and that the
tables and the JSON are well formed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import tasks
from bench.__main__ import options_from, parser
from bench.deploy import Deployment, Servers
from bench.machine import CpuMeter
from bench.report import (
    EVENTS_OFF_DEPLOYMENT,
    EVENTS_OFF_WORKLOAD,
    FLOOR_HOP,
    FLOOR_PIPELINED,
    W1_EVENT_MEDIAN,
    W3_NODES,
    BenchRun,
    FloorResult,
    Metric,
    Summary,
    WorkloadResult,
    compute_ratios,
    format_number,
    format_table,
    percentile,
    render,
    to_document,
    write_json,
)
from bench.suite import NODE_EVENTS_OFF_ENV, Options, events_off, memory_engine, parse_choice
from bench.workloads import (
    DIAMOND_EDGES,
    Chain,
    Diamonds,
    FanOutIn,
    Sizes,
    build,
    chain_workflow,
    diamond_workflow,
    fan_workflow,
    ready_workflow,
)
from spane.compiler.compile import compile_plan
from spane.compiler.plan import Plan
from spane.config import Settings
from spane.schemas.loader import spec_from_data


def _plan(data: dict[str, object]) -> Plan:
    return compile_plan(spec_from_data(data))


def _parents(plan: Plan, node_id: str) -> set[str]:
    return {edge.source for edge in plan.nodes[node_id].parents}


# ------------------------------------------------------------------ workloads
def test_chain_is_a_single_sequence_of_noop_functions() -> None:
    plan = _plan(chain_workflow(200))
    assert len(plan.nodes) == 200
    assert plan.roots == ("s0000",)
    assert plan.leaves == ("s0199",)
    assert len(plan.groups) == 200
    assert all(len(node.parents) <= 1 for node in plan.nodes.values())
    assert {node.spec.function for node in plan.nodes.values()} == {tasks.NOOP}  # type: ignore[union-attr]


def test_fan_out_in_has_one_root_width_branches_and_a_map_join() -> None:
    plan = _plan(fan_workflow(500))
    assert len(plan.nodes) == 502
    assert plan.roots == ("fan",)
    assert plan.leaves == ("join",)
    assert [len(group) for group in plan.groups] == [1, 500, 1]
    join = plan.nodes["join"]
    assert len(join.parents) == 500
    assert join.aggregate == "map"
    assert join.type == "function"


def test_diamond_has_the_edges_of_design_section_9() -> None:
    plan = _plan(diamond_workflow())
    assert set(plan.nodes) == set("abcdefghij")
    for node_id, after in DIAMOND_EDGES.items():
        assert _parents(plan, node_id) == set(after)
    assert plan.roots == ("a",)
    assert plan.leaves == ("j",)
    assert _parents(plan, "e") == {"b", "c"}
    assert _parents(plan, "g") == {"e", "f"}
    assert _parents(plan, "j") == {"h", "i"}


def test_ready_workflow_compiles() -> None:
    assert len(_plan(ready_workflow()).nodes) == 1


@pytest.mark.parametrize("builder", [chain_workflow, fan_workflow])
def test_builders_refuse_empty_sizes(builder: object) -> None:
    with pytest.raises(ValueError, match="at least one"):
        builder(0)  # type: ignore[operator]


def test_build_knows_every_workload_and_refuses_others() -> None:
    sizes = Sizes(chain_steps=3, fan_width=4, diamonds=2)
    assert isinstance(build("w1", sizes), Chain)
    assert isinstance(build("w2", sizes), FanOutIn)
    assert isinstance(build("w3", sizes), Diamonds)
    with pytest.raises(ValueError, match="unknown workload"):
        build("w9", sizes)


def test_the_noop_task_is_registered_under_its_name() -> None:
    assert tasks.registry().function(tasks.NOOP).is_async


async def test_each_workload_runs_once_on_the_memory_engine() -> None:
    """Small sizes, one run each: every metric gets a value (none is compared)."""
    sizes = Sizes(chain_steps=5, fan_width=6, diamonds=3)
    async with memory_engine() as engine:
        for key in ("w1", "w2", "w3"):
            workload = build(key, sizes)
            await workload.prepare(engine)
            sample = await workload.run_once(engine, timeout=20)
            await workload.finish(engine)
            assert set(sample.values) == {m.name for m in workload.metrics()}
            assert all(value > 0 for value in sample.values.values())
        assert engine.bus.dead_letters == []  # type: ignore[attr-defined]


# --------------------------------------------------------------------- report
def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2, 3, 4, 5], 100) == 5
    assert percentile([1, 2, 3, 4, 5], 0) == 1
    assert percentile([10, 20], 25) == pytest.approx(12.5)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_summary_is_median_and_range() -> None:
    assert Summary.of([3.0, 1.0, 2.0, 10.0]) == Summary(2.5, 1.0, 10.0, 4)


@pytest.mark.parametrize(
    ("value", "text"),
    [(1234.5, "1,234"), (123.4, "123"), (12.34, "12.3"), (1.234, "1.23"), (0.1234, "0.123")],
)
def test_format_number(value: float, text: str) -> None:
    assert format_number(value) == text


def test_format_table_aligns_text_left_and_numbers_right() -> None:
    table = format_table(["name", "value"], [["a", "1.5"], ["longer", "100"]]).splitlines()
    assert table[0] == "name    value"
    assert table[1] == "------  -----"
    assert table[2] == "a         1.5"
    assert table[3] == "longer    100"
    with pytest.raises(ValueError, match="cells"):
        format_table(["one"], [["a", "b"]])


def _run() -> BenchRun:
    w1 = WorkloadResult(
        "real", "w1", "W1 chain, 200 steps", [Metric(W1_EVENT_MEDIAN, "ms", [20.0, 22.0, 18.0])]
    )
    w1.cpu = {"busy": 0.9, "ours": 0.4, "servers": 0.25, "others": 0.25}
    w3 = WorkloadResult(
        "real", "w3", "W3", [Metric(W3_NODES, "1/s", [100.0, 120.0], better="higher")]
    )
    w3_memory = WorkloadResult(
        "memory", "w3", "W3", [Metric(W3_NODES, "1/s", [1000.0], better="higher")]
    )
    broken = WorkloadResult("real", "w2", "W2", error="TimeoutError: stuck\nfor good")
    quiet = events_off(
        WorkloadResult("real", "w3", "W3", [Metric(W3_NODES, "1/s", [300.0], better="higher")])
    )
    floor = FloorResult(
        [Metric(FLOOR_PIPELINED, "msgs/s", [1000.0]), Metric(FLOOR_HOP, "ms", [2.0, 2.0])]
    )
    run = BenchRun(
        machine={"cpu_count": 2, "python": "3.11.7"},
        options={"repeat": 3},
        results=[w1, broken, w3, w3_memory, quiet],
        floor=floor,
        deployment={
            "rss_kib": {"orchestrator": {"start": 81920, "end": 92160}},
            "log_summary": {
                "orchestrator": {
                    "errors": 2,
                    "warnings": 0,
                    "exceptions": {"redis.exceptions.MaxConnectionsError: Too many": 2},
                },
                "worker": {"errors": 0, "warnings": 0, "exceptions": {}},
            },
            EVENTS_OFF_DEPLOYMENT: {
                "rss_kib": {"orchestrator": {"start": 40960, "end": 51200}},
                "log_summary": {"worker": {"errors": 0, "warnings": 1, "exceptions": {}}},
            },
        },
    )
    run.ratios = compute_ratios(run.results, run.floor)
    return run


def test_ratios_compare_spane_with_the_floor() -> None:
    ratios = {ratio.name: ratio for ratio in _run().ratios}
    assert ratios["W3 node cost / pipelined message cost"].value == pytest.approx(1000 / 110)
    assert ratios["W1 step latency / hop latency"].value == pytest.approx(10.0)
    assert ratios["W3 engine share (memory / real node time)"].value == pytest.approx(0.11)
    assert all(ratio.meaning for ratio in ratios.values())


def test_ratios_use_w3_with_node_events_on() -> None:
    """The events-off row (300/s) is reported but never a ratio's numerator."""
    run = _run()
    assert [r.title for r in run.results if r.workload == EVENTS_OFF_WORKLOAD] == [
        "W3, node events off"
    ]
    without = compute_ratios([r for r in run.results if r.workload != EVENTS_OFF_WORKLOAD], None)
    assert compute_ratios(run.results, None) == without
    assert all("300" not in ratio.numerator for ratio in run.ratios)


def test_ratios_need_both_sides() -> None:
    assert compute_ratios([], None) == []


def test_render_shows_every_section_and_errors_as_rows() -> None:
    text = render(_run())
    assert "W1 chain, 200 steps" in text
    assert "20.0" in text  # the W1 median
    assert "18.0-22.0" in text
    assert "ERROR" in text
    assert "TimeoutError: stuck for good" in text
    assert FLOOR_PIPELINED in text
    assert "9.09x" in text
    assert "orchestrator RSS: start 80.0 MiB, end 90.0 MiB" in text
    assert "orchestrator log: 2 ERROR and 0 WARNING line(s)" in text
    assert "2 x redis.exceptions.MaxConnectionsError: Too many" in text
    assert "worker log" not in text
    assert "W3, node events off" in text
    assert "orchestrator (node events off) RSS: start 40.0 MiB, end 50.0 MiB" in text
    assert "worker (node events off) log: 0 ERROR and 1 WARNING line(s)" in text
    assert "others' cpu" in text
    assert "25%" in text


def test_json_document_holds_raw_values_and_summaries(tmp_path: Path) -> None:
    path = tmp_path / "results" / "latest.json"
    write_json(_run(), path)
    document = json.loads(path.read_text())
    assert document == to_document(_run())
    first = document["results"][0]
    assert first["metrics"][0]["values"] == [20.0, 22.0, 18.0]
    assert first["metrics"][0]["summary"]["median"] == 20.0
    assert document["results"][1]["error"].startswith("TimeoutError")
    assert document["floor"]["metrics"][0]["name"] == FLOOR_PIPELINED


def test_cpu_meter_splits_the_machine_into_shares() -> None:
    meter = CpuMeter()
    before = meter.snapshot()
    sum(i * i for i in range(200_000))  # some cpu of our own
    shares = meter.shares(before)
    if shares is None:
        pytest.skip("no /proc on this platform")
    for value in (shares.busy, shares.ours, shares.servers, shares.others):
        assert 0.0 <= value <= 1.0
    assert set(shares.as_dict()) == {"busy", "ours", "servers", "others"}


def test_log_summary_counts_errors_and_exceptions(tmp_path: Path) -> None:
    deployment = Deployment(Servers("amqp://x", "redis://x", "mongodb://x"))
    deployment.remove_logs()
    deployment.logs = tmp_path
    deployment.processes = {"orchestrator": None}  # type: ignore[dict-item]
    (tmp_path / "orchestrator.log").write_text(
        "2026-01-01 INFO spane.cli.main: running\n"
        "2026-01-01 ERROR spane.bus.rabbit: consumer inbox: handler failed\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "redis.exceptions.MaxConnectionsError: Too many connections\n"
        "2026-01-01 WARNING spane.orchestrator: slow\n"
    )
    try:
        summary = deployment.log_summary()
    finally:
        deployment.processes = {}
    assert summary == {
        "orchestrator": {
            "warnings": 1,
            "errors": 1,
            "exceptions": {"redis.exceptions.MaxConnectionsError: Too many connections": 1},
        }
    }


def test_extra_env_goes_last_into_the_processes_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPANE_NODE_EVENTS", "false")  # ours never leaks into a deployment
    servers = Servers("amqp://x", "redis://x", "mongodb://x")
    plain = Deployment(servers)
    quiet = Deployment(servers, extra_env={**dict(NODE_EVENTS_OFF_ENV), "SPANE_LOG_LEVEL": "X"})
    for deployment in (plain, quiet):
        deployment.remove_logs()
    assert "SPANE_NODE_EVENTS" not in plain.env()
    env = quiet.env()
    assert env["SPANE_NODE_EVENTS"] == "false"
    assert env["SPANE_LOG_LEVEL"] == "X"
    base = plain.env()
    changed = {key for key in base.keys() | env.keys() if base.get(key) != env.get(key)}
    per_deployment = {"SPANE_NAMESPACE", "SPANE_MONGODB_URL"}
    assert changed == per_deployment | {"SPANE_NODE_EVENTS", "SPANE_LOG_LEVEL"}


def test_the_events_off_environment_turns_node_events_off(monkeypatch: pytest.MonkeyPatch) -> None:
    servers = Servers("amqp://x", "redis://x", "mongodb://x")
    deployment = Deployment(servers, extra_env=dict(NODE_EVENTS_OFF_ENV))
    deployment.remove_logs()
    for key, value in deployment.env().items():
        if key.startswith("SPANE_"):
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.node_events is False
    assert settings.core_options().node_events is False


def test_events_off_labels_its_row_like_the_memory_one() -> None:
    result = events_off(WorkloadResult("real", "w3", "W3 200 x 10-node diamond"))
    assert (result.backend, result.workload) == ("real", EVENTS_OFF_WORKLOAD)
    assert result.title == "W3 200 x 10-node diamond, node events off"


# -------------------------------------------------------------------- options
def test_quick_means_one_warm_up_and_two_repetitions() -> None:
    options = options_from(parser().parse_args(["--quick", "--backend", "memory"]))
    assert (options.repeat, options.warmup, options.backends) == (2, 1, ("memory",))
    defaults = options_from(parser().parse_args([]))
    assert (defaults.repeat, defaults.warmup) == (5, 1)
    assert defaults.backends == ("memory", "real")
    assert defaults.workloads == ("w1", "w2", "w3")


@pytest.mark.parametrize(
    ("events_off", "workloads", "expected"),
    [
        (True, ("w1", "w2", "w3"), True),
        (True, ("w3",), True),
        (True, ("w1", "w2"), False),
        (False, ("w3",), False),
    ],
)
def test_events_off_runs_need_the_option_and_w3(
    events_off: bool, workloads: tuple[str, ...], expected: bool
) -> None:
    assert Options(workloads=workloads, events_off=events_off).wants_events_off is expected


def test_no_events_off_flag_skips_the_extra_runs() -> None:
    assert options_from(parser().parse_args([])).events_off is True
    assert options_from(parser().parse_args(["--no-events-off"])).events_off is False
    assert "(memory and real backends)" in " ".join(parser().format_help().split())


def test_parse_choice() -> None:
    assert parse_choice("all", ("w1", "w2"), "all") == ("w1", "w2")
    assert parse_choice("w2", ("w1", "w2"), "all") == ("w2",)
    with pytest.raises(ValueError, match="not one of"):
        parse_choice("w7", ("w1", "w2"), "all")


async def test_the_collects_between_timed_runs_are_taken_off_the_client_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A full collect of the client's heap between runs (outside their timing, inside
    the cpu window; ~70 ms each) is not the workload's cost: its cpu is subtracted."""
    import bench.suite as suite
    from bench.machine import CLIENT, CpuMeter
    from bench.workloads import Sample

    monkeypatch.setattr(suite, "PER_NODE_BACKENDS", ("fake",))
    monkeypatch.setattr(suite, "_collect", lambda: 0.25)
    monkeypatch.setattr(
        suite, "cpu_seconds", lambda before, after, roles: {CLIENT: 1.0, "worker": 2.0}
    )

    class Noop:
        key, title, nodes = "w1", "no-op", 10
        repeat: int | None = 2

        def metrics(self) -> list[Any]:
            return []

        async def prepare(self, engine: object) -> None: ...

        async def warm_once(self, engine: object, timeout: float) -> Sample:
            return Sample({})

        async def run_once(self, engine: object, timeout: float) -> Sample:
            return Sample({})

        async def abort(self, engine: object) -> None: ...

        async def finish(self, engine: object) -> None: ...

    result = await suite.measure(Noop(), None, "fake", suite.Context(suite.Options(), CpuMeter()))
    assert result.error is None
    assert result.cpu_per_node is not None
    # 2 runs of 10 nodes: the client's 1.0 s less 2 collects of 0.25 s, over 20 nodes
    assert result.cpu_per_node[CLIENT] == pytest.approx(0.5 / 20 * 1e6)
    assert result.cpu_per_node["worker"] == pytest.approx(2.0 / 20 * 1e6)

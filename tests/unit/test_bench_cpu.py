"""The real backend's cpu per node execution: splitting snapshots, arithmetic, table."""

from __future__ import annotations

import pytest

from bench.machine import CLOCK_TICKS, CpuMeter, CpuSnapshot, cpu_seconds, server_role
from bench.report import (
    CPU_ROLES,
    BenchRun,
    WorkloadResult,
    cpu_per_node,
    cpu_per_node_table,
    render,
    to_document,
)
from bench.workloads import Sizes, build


@pytest.mark.parametrize(
    ("name", "role"),
    [
        ("beam.smp", "rabbitmq"),
        ("redis-server", "redis"),
        ("mongod", "mongodb"),
        ("secantusd-py", "mongodb"),
        ("python3", None),
    ],
)
def test_server_role_comes_from_the_command_name(name: str, role: str | None) -> None:
    assert server_role(name) == role


def test_cpu_seconds_splits_named_pids_and_servers_by_role() -> None:
    before = CpuSnapshot(
        None,
        {10: ("python3", 100), 11: ("python3", 50), 20: ("beam.smp", 0), 99: ("bash", 0)},
    )
    after = CpuSnapshot(
        None,
        {
            10: ("python3", 100 + 2 * CLOCK_TICKS),
            11: ("python3", 50 + CLOCK_TICKS),
            20: ("beam.smp", CLOCK_TICKS),
            21: ("secantusd-py", CLOCK_TICKS),  # started in between: counted from zero
            22: ("mongod", CLOCK_TICKS),
            99: ("bash", 5 * CLOCK_TICKS),  # neither ours nor a server
        },
    )
    seconds = cpu_seconds(before, after, {10: "orchestrator", 11: "client"})
    assert seconds == pytest.approx(
        {"orchestrator": 2.0, "client": 1.0, "rabbitmq": 1.0, "mongodb": 2.0}
    )


def test_the_meter_names_its_own_process_the_client_and_adds_roles() -> None:
    meter = CpuMeter()
    meter.add({"orchestrator": 4242, "worker": 4243})
    assert set(meter.roles.values()) == {"client", "orchestrator", "worker"}
    assert {4242, 4243} <= meter.ours


@pytest.mark.parametrize(
    ("seconds", "nodes", "cores", "total", "cap"),
    [
        # W3 x2 runs = 4,000 nodes; 2 s orchestrator + 1 s worker + 1 s rabbitmq + 2 s rest
        (
            {"orchestrator": 2.0, "worker": 1.0, "rabbitmq": 1.0, "redis": 1.0, "client": 1.0},
            4000,
            2,
            1500.0,
            2e6 / 1500,
        ),
        ({"orchestrator": 0.5}, 500, 4, 1000.0, 4000.0),
    ],
)
def test_cpu_per_node_is_microseconds_per_node_and_a_cap(
    seconds: dict[str, float], nodes: int, cores: int, total: float, cap: float
) -> None:
    per_node = cpu_per_node(seconds, nodes, cores)
    assert per_node is not None
    assert list(per_node) == [*CPU_ROLES, "total", "cap"]
    assert per_node["orchestrator"] == pytest.approx(seconds["orchestrator"] * 1e6 / nodes)
    assert per_node["mongodb"] == 0.0
    assert per_node["total"] == pytest.approx(total)
    assert per_node["cap"] == pytest.approx(cap)


@pytest.mark.parametrize(("seconds", "nodes"), [({"worker": 1.0}, 0), ({}, 100)])
def test_cpu_per_node_needs_nodes_and_some_cpu(seconds: dict[str, float], nodes: int) -> None:
    assert cpu_per_node(seconds, nodes) is None


def test_workloads_count_their_node_executions() -> None:
    assert [build(key, Sizes()).nodes for key in ("w1", "w2", "w3")] == [200, 502, 2000]


def _measured(title: str, orchestrator: float) -> WorkloadResult:
    result = WorkloadResult("real", "w3", title)
    result.cpu_per_node = cpu_per_node({"orchestrator": orchestrator, "worker": 0.5}, 1000)
    return result


def test_cpu_per_node_table_has_a_row_per_measured_workload() -> None:
    lines = cpu_per_node_table(
        [
            _measured("W3", 0.7),
            WorkloadResult("memory", "w3", "W3 memory"),  # no breakdown: no row
            _measured("W3, node events off", 0.4),
        ]
    )
    assert lines is not None
    header, _, first, second = lines.splitlines()
    assert header.split() == [
        "cpu", "per", "node", "execution", "(µs)", *CPU_ROLES, "total", "cap", "on", "2", "cores",
    ]  # fmt: skip
    assert first.split() == ["W3", "700", "500", "0", "0", "0", "0", "1,200", "1,667"]
    assert second.split()[-8:] == ["400", "500", "0", "0", "0", "0", "900", "2,222"]
    assert cpu_per_node_table([WorkloadResult("memory", "w3", "W3")]) is None


def test_render_and_json_carry_the_breakdown() -> None:
    run = BenchRun(machine={}, options={}, results=[_measured("W3", 0.7)])
    assert "cpu per node execution (µs)" in render(run)
    document = to_document(run)
    assert document["results"][0]["cpu_per_node_us"]["total"] == pytest.approx(1200.0)
    assert "cpu per node" not in render(BenchRun(machine={}, options={}))

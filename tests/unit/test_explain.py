"""``spane.core.explain``: what every unfinished node waits on, for states produced by
driving the real core (tests/unit/harness.py) on small compiled workflows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from spane.compiler.compile import compile_plan
from spane.core.decisions import begin
from spane.core.explain import Explanation, WaitKind, explain
from spane.schemas.loader import spec_from_data
from spane.schemas.messages import PauseCommand, StartExecution, TaskMessage
from spane.schemas.state import ExecutionStatus, NodeStatus
from spane.schemas.workflow import WorkflowSpec
from tests.unit.harness import Harness, fail_with

START = 1_000.0


def spec(*nodes: dict[str, Any], **extra: Any) -> WorkflowSpec:
    return spec_from_data({"id": "t", "nodes": list(nodes), **extra})


def fn(node_id: str, *after: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "function": "f", "after": list(after), **fields}


def complete(h: Harness, node_id: str) -> None:
    """Complete the first dispatched task of ``node_id`` (others stay out)."""
    task = next(t for t in h.tasks if t.node_id == node_id)
    h.tasks.remove(task)
    h.complete(task)


def failing(node_id: str) -> Callable[[TaskMessage], tuple[bool, Any]]:
    def behaviour(task: TaskMessage) -> tuple[bool, Any]:
        if task.node_id == node_id:
            return False, fail_with("Flaky")
        return True, {"node": task.node_id}

    return behaviour


# ------------------------------------------------------------------ scenarios
def upstream_open() -> Harness:
    h = Harness(spec(fn("a"), fn("b"), fn("c", "a", "b"))).start()
    complete(h, "a")
    return h


def join_at_least() -> Harness:
    nodes = [fn("a"), fn("b"), fn("c"), fn("d", "a", "b", "c", join={"at_least": 2})]
    h = Harness(spec(*nodes)).start()
    complete(h, "a")
    return h


def delay_node() -> Harness:
    return Harness(spec({"id": "nap", "type": "delay", "duration": "30s"})).start()


def retry_backoff() -> Harness:
    retry = {"max_attempts": 3, "initial_interval": "2s", "jitter": False}
    h = Harness(spec(fn("flaky", retry=retry)), failing("flaky")).start()
    complete(h, "flaky")
    return h


def signal_wait() -> Harness:
    schema = {"type": "object", "required": ["ok"]}
    node = {"id": "ask", "type": "wait_for_signal", "signal": "approve", "schema": schema}
    return Harness(spec(node, timeout="1m")).start()


def concurrency_queue() -> Harness:
    return Harness(spec(fn("a"), fn("b"), fn("c"), max_concurrency=1)).start()


def paused_queue() -> Harness:
    h = Harness(spec(fn("a"), fn("b"), max_concurrency=1)).start()
    h.send(PauseCommand(execution_id="e1"))
    return h


def paused_deferred() -> Harness:
    h = Harness(spec(fn("a"), fn("b", "a"))).start()
    h.send(PauseCommand(execution_id="e1"))
    complete(h, "a")
    return h


def paused_delay() -> Harness:
    h = delay_node()
    h.send(PauseCommand(execution_id="e1"))
    return h


def sub_workflow() -> Harness:
    return Harness(spec({"id": "child", "type": "sub_workflow", "workflow": "other"})).start()


def pending_slot() -> Harness:
    h = Harness(spec(fn("a"), max_executions=1))
    start = StartExecution(execution_id="e1", workflow_id="t")
    h.view, _ = begin(h.plan, start, START, pending=True)
    return h


def finished() -> Harness:
    h = Harness(spec(fn("a"), fn("b", "a"))).start()
    h.run()
    return h


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], Harness]
    node: str | None
    kind: WaitKind | None
    fields: dict[str, Any] = field(default_factory=dict)
    words: tuple[str, ...] = ()
    execution_words: tuple[str, ...] = ()


CASES = [
    Case(
        "join all: one upstream edge still open",
        upstream_open,
        "c",
        WaitKind.UPSTREAM,
        {"join": "all", "needed": 1},
        ("1 of 2 upstream", "b.success", "it is running"),
    ),
    Case(
        "a task out with its pool",
        upstream_open,
        "b",
        WaitKind.WORKER,
        {"pool": "function", "attempt": 1, "since": START},
        ("dispatched to pool 'function'", "waiting for a worker"),
    ),
    Case(
        "join at_least 2: one more fired edge needed",
        join_at_least,
        "d",
        WaitKind.UPSTREAM,
        {"join": "at_least", "needed": 1},
        ("needs 1 more", "b.success", "c.success"),
    ),
    Case(
        "delay timer",
        delay_node,
        "nap",
        WaitKind.DELAY,
        {"until": START + 30, "remaining": 30.0},
        ("timer fires at 1970-01-01T00:17:10.000Z", "in 30.0s"),
    ),
    Case(
        "retry backoff",
        retry_backoff,
        "flaky",
        WaitKind.RETRY,
        {"until": START + 2, "remaining": 2.0, "attempt": 1},
        ("attempt 1 of 3 failed", "Flaky", "backoff until"),
    ),
    Case(
        "signal",
        signal_wait,
        "ask",
        WaitKind.SIGNAL,
        {"signal": "approve", "signal_schema": {"type": "object", "required": ["ok"]}},
        ("waits for the signal 'approve'",),
    ),
    Case(
        "max_concurrency: queued behind the running task",
        concurrency_queue,
        "c",
        WaitKind.CONCURRENCY,
        {"queue_position": 2, "limit": 1, "running": 1},
        ("position 2 of 2", "max_concurrency 1"),
    ),
    Case(
        "paused: queued until resume",
        paused_queue,
        "b",
        WaitKind.PAUSED,
        {"queue_position": 1},
        ("paused", "dispatched on resume"),
        ("paused",),
    ),
    Case(
        "paused: join fired while paused",
        paused_deferred,
        "b",
        WaitKind.PAUSED,
        {},
        ("starts on resume",),
    ),
    Case(
        "paused delay: the timer is held",
        paused_delay,
        "nap",
        WaitKind.DELAY,
        {"notes": ("the execution is paused: if the timer fires it is held until resume",)},
        ("timer fires",),
    ),
    Case(
        "sub-workflow child",
        sub_workflow,
        "child",
        WaitKind.CHILD,
        {"children": ("e1.child.1",)},
        ("child execution e1.child.1",),
    ),
    Case(
        "max_executions: the execution is pending",
        pending_slot,
        "a",
        WaitKind.EXECUTION_SLOT,
        {"limit": 1},
        ("max_executions slot",),
        ("waits for a slot", "max_executions"),
    ),
    Case("finished: nothing waits", finished, None, None, {}, (), ("succeeded",)),
]


def _explain(h: Harness) -> Explanation:
    assert h.view is not None
    return explain(h.plan, h.view.meta, h.view.all_nodes(), h.now)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_explains(case: Case) -> None:
    h = case.build()
    result = _explain(h)
    for words in case.execution_words:
        assert words in result.message
    if case.node is None:
        assert result.nodes == ()
        return
    node = result.node(case.node)
    assert node is not None, [n.node_id for n in result.nodes]
    assert node.kind is case.kind
    for name, value in case.fields.items():
        assert getattr(node, name) == value, name
    for words in case.words:
        assert words in node.message, node.message
    data = node.to_dict()
    assert data["kind"] == str(case.kind)
    assert data["message"] == node.message


def test_only_unfinished_nodes_in_plan_order() -> None:
    result = _explain(upstream_open())
    assert [n.node_id for n in result.nodes] == ["b", "c"]
    assert result.status is ExecutionStatus.RUNNING


def test_pool_consumers_when_known() -> None:
    h = upstream_open()
    assert h.view is not None
    none = explain(h.plan, h.view.meta, h.view.all_nodes(), h.now, pool_consumers={})
    b = none.node("b")
    assert b is not None
    assert b.pool_consumers == 0
    assert "no worker consumes pool 'function'" in b.message
    two = explain(h.plan, h.view.meta, h.view.all_nodes(), h.now, pool_consumers={"function": 2})
    b = two.node("b")
    assert b is not None
    assert "2 consumer(s)" in b.message


def test_overdue_timer_and_to_dict_is_json() -> None:
    h = delay_node()
    assert h.view is not None
    result = explain(h.plan, h.view.meta, h.view.all_nodes(), START + 31)
    nap = result.node("nap")
    assert nap is not None
    assert nap.remaining == -1.0
    assert "overdue by 1.0s" in nap.message
    data = result.to_dict()
    assert data["nodes"][0]["until"] == START + 30
    assert "open_edges" not in data["nodes"][0]


def test_open_edges_are_structured() -> None:
    result = _explain(upstream_open())
    c = result.node("c")
    assert c is not None
    assert [(e.edge, e.source, e.port, e.source_status) for e in c.open_edges] == [
        ("b.success", "b", "success", NodeStatus.RUNNING)
    ]
    assert c.to_dict()["open_edges"] == [
        {"edge": "b.success", "source": "b", "port": "success", "source_status": "running"}
    ]


def test_explain_reads_no_clock() -> None:
    """The same inputs give the same answer (``now`` is an argument)."""
    h = retry_backoff()
    assert _explain(h) == _explain(h)
    plan = compile_plan(spec(fn("a")))
    assert plan.workflow_id == "t"

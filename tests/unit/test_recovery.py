"""Retry and replay in the pure core (:mod:`spane.core.recovery`): what a RetryCommand
does to a finished execution, and what a replay's seed starts from.

Driven by the golden histories' :class:`Script` (fake clock, simulated workers, child
executions delivered like the adapters would)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from spane.compiler.compile import compile_plan
from spane.core import CoreOptions
from spane.core.recovery import downstream, kept_nodes, replay_seed
from spane.errors import InvalidInputError
from spane.schemas.commands import EmitEvent
from spane.schemas.loader import spec_from_data
from spane.schemas.messages import (
    CancelCommand,
    PauseCommand,
    RetryCommand,
    SignalCommand,
    StartExecution,
    TaskMessage,
)
from spane.schemas.state import ExecutionStatus, NodeState, NodeStatus, TimerKind
from tests.unit.golden.record import Json, Script, boom, fn, node, succeed

RETRY = RetryCommand(execution_id="e1")


def script(*workflows: Json) -> Script:
    return Script(list(workflows), CoreOptions())


def status(s: Script, execution_id: str = "e1") -> ExecutionStatus:
    return s.executions[execution_id].meta.status


def state(s: Script, node_id: str, execution_id: str = "e1") -> NodeState:
    return s.executions[execution_id].nodes.get(node_id, NodeState())


def dispatched(s: Script, since: int = 0) -> Counter[str]:
    """Task dispatches per node (of every execution) in the steps from ``since`` on."""
    counts: Counter[str] = Counter()
    for step in s.steps[since:]:
        for command in step["commands"]:
            if command["command"] == "DispatchTask":
                counts[command["task"]["node_id"]] += 1
    return counts


def events(s: Script, since: int = 0) -> list[Json]:
    return [
        c["event"]
        for step in s.steps[since:]
        for c in step["commands"]
        if c["command"] == "EmitEvent"
    ]


def failing(*bad: str) -> Any:
    """Workers where the nodes in ``bad`` fail for good, the others succeed."""

    def outcome(task: TaskMessage) -> tuple[bool, Any]:
        if task.node_id in bad:
            return False, boom(non_retryable=True)
        return succeed(task)

    return outcome


CHAIN = {"id": "chain", "nodes": [fn("a"), fn("b", "a"), fn("c", "b"), fn("side", "a")]}


# ---------------------------------------------------------------- retry
def test_retry_after_an_unhandled_failure_runs_the_failed_node_and_what_follows() -> None:
    s = script(CHAIN)
    s.start("chain", {"n": 1})
    s.drain(failing("b"))
    assert status(s) == ExecutionStatus.FAILED
    assert state(s, "c").status == NodeStatus.SKIPPED  # b did not succeed
    a_output = state(s, "a").output
    mark = len(s.steps)

    s.send(RETRY)
    assert s.steps[-1]["rejection"] is None
    meta = s.executions["e1"].meta
    assert (meta.status, meta.failing, meta.error, meta.finished_at) == (
        ExecutionStatus.RUNNING,
        False,
        None,
        None,
    )
    assert meta.retries == 1
    assert meta.unsettled == 3
    s.drain()

    assert status(s) == ExecutionStatus.SUCCEEDED
    assert dispatched(s, mark) == Counter({"b": 1, "c": 1, "side": 1})  # a never again
    assert state(s, "a").output == a_output
    assert state(s, "b").attempt == 2
    assert state(s, "b").attempt_base == 1
    assert state(s, "b").status == NodeStatus.SUCCEEDED
    retried = [e for e in events(s, mark) if e["type"] == "io.spane.execution.retried"]
    assert [e["id"] for e in retried] == ["e1:retried:1"]
    assert sorted(retried[0]["data"]["nodes"]) == ["b", "c", "side"]
    assert retried[0]["data"]["previous"] == "failed"
    finished = [e["id"] for e in events(s, mark) if e["type"].startswith("io.spane.execution.")]
    assert finished == ["e1:retried:1", "e1:succeeded:1"]


def test_every_event_id_stays_unique_across_retries() -> None:
    s = script(CHAIN)
    s.start("chain")
    s.drain(failing("b"))
    s.send(RETRY)
    s.drain(failing("b"))
    s.send(RETRY)
    s.drain()
    assert status(s) == ExecutionStatus.SUCCEEDED
    ids = [e["id"] for e in events(s)]
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    # a node skipped or cancelled the same way twice reports the same fact: same id
    assert all(i.endswith((":skipped", ":cancelled")) for i in repeated), repeated
    assert "e1:failed" in ids
    assert "e1:failed:1" in ids
    assert "e1:succeeded:2" in ids


def test_retry_after_a_handled_failure_keeps_it_and_reruns_the_failed_handler() -> None:
    spec = {"id": "caught", "nodes": [fn("a"), fn("b", "a"), fn("h", "b.error"), fn("n", "b")]}
    s = script(spec)
    s.start("caught")
    s.drain(failing("b", "h"))
    assert status(s) == ExecutionStatus.FAILED
    assert s.executions["e1"].meta.error is not None
    assert s.executions["e1"].meta.error.node_id == "h"
    mark = len(s.steps)
    s.send(RETRY)
    s.drain()
    assert status(s) == ExecutionStatus.SUCCEEDED
    assert dispatched(s, mark) == Counter({"h": 1})  # b's failure was handled: it stands
    assert state(s, "b").status == NodeStatus.FAILED
    assert state(s, "n").status == NodeStatus.SKIPPED
    assert (state(s, "h").status, state(s, "h").attempt) == (NodeStatus.SUCCEEDED, 2)


def test_the_retry_budget_starts_afresh_and_attempt_numbers_go_on() -> None:
    spec = {"id": "flaky", "nodes": [fn("a", retry={"max_attempts": 2, "jitter": False})]}
    s = script(spec)
    s.start("flaky")
    s.drain(lambda task: (False, boom()))
    assert status(s) == ExecutionStatus.FAILED
    assert dispatched(s) == Counter({"a": 2})
    mark = len(s.steps)
    s.send(RETRY)
    attempts: list[int] = []

    def second_run(task: TaskMessage) -> tuple[bool, Any]:
        attempts.append(task.attempt)
        return (task.attempt == 4, "ok" if task.attempt == 4 else boom())

    s.drain(second_run)
    assert attempts == [3, 4]
    assert status(s) == ExecutionStatus.SUCCEEDED
    assert dispatched(s, mark) == Counter({"a": 2})
    assert [t["id"] for t in _tasks(s, mark)] == ["e1:a:3", "e1:a:4"]


def _tasks(s: Script, since: int) -> list[Json]:
    return [
        {"id": c["task"]["task_id"]}
        for step in s.steps[since:]
        for c in step["commands"]
        if c["command"] == "DispatchTask"
    ]


def test_a_late_result_of_an_attempt_from_before_the_retry_is_stale() -> None:
    spec = {"id": "par", "nodes": [fn("slow"), fn("bad")]}
    s = script(spec)
    s.start("par")
    slow = s.task("slow")
    s.fail(s.task("bad"), boom(non_retryable=True))
    assert status(s) == ExecutionStatus.FAILED  # slow was cancelled
    s.send(RETRY)
    s.complete(slow, "late")  # attempt 1's result arrives after the retry
    assert state(s, "slow").status == NodeStatus.RUNNING
    assert state(s, "slow").attempt == 2
    s.drain()
    assert status(s) == ExecutionStatus.SUCCEEDED
    assert state(s, "slow").output != "late"


@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        ("running", "is running: only a failed, timed-out or cancelled one can be retried"),
        ("paused", "is paused"),
        ("succeeded", "succeeded: nothing to retry (replay it instead)"),
    ],
)
def test_retry_is_refused_unless_the_execution_failed_timed_out_or_was_cancelled(
    prepare: str, reason: str
) -> None:
    s = script(CHAIN)
    s.start("chain")
    if prepare == "paused":
        s.send(PauseCommand(execution_id="e1"))
    if prepare == "succeeded":
        s.drain()
    before = s.executions["e1"].meta
    s.send(RETRY)
    assert reason in str(s.steps[-1]["rejection"])
    assert s.steps[-1]["commands"] == []
    assert s.executions["e1"].meta == before


def test_retry_of_a_failed_workflow_output_with_every_node_done_is_refused() -> None:
    spec = {"id": "out", "nodes": [fn("a")], "output": "${ nodes.a.output.missing }"}
    s = script(spec)
    s.start("out")
    s.drain()
    assert status(s) == ExecutionStatus.FAILED
    s.send(RETRY)
    assert "no node to run again" in str(s.steps[-1]["rejection"])


def test_retry_of_a_cancelled_execution_runs_what_did_not_finish() -> None:
    s = script(CHAIN)
    s.start("chain")
    s.complete(s.task("a"), "A")
    s.send(CancelCommand(execution_id="e1"))
    assert status(s) == ExecutionStatus.CANCELLED
    mark = len(s.steps)
    s.send(RETRY)
    s.drain()
    assert status(s) == ExecutionStatus.SUCCEEDED
    assert dispatched(s, mark) == Counter({"b": 1, "c": 1, "side": 1})
    assert state(s, "b").input == "A"


def test_retry_of_a_timed_out_execution_arms_a_fresh_deadline() -> None:
    spec = {"id": "slow", "timeout": "10s", "nodes": [fn("a"), fn("b", "a")]}
    s = script(spec)
    s.start("slow")
    s.complete(s.task("a"), "A")
    s.fire(TimerKind.EXECUTION_TIMEOUT)
    assert status(s) == ExecutionStatus.TIMED_OUT
    s.now += 100
    s.send(RETRY)
    meta = s.executions["e1"].meta
    assert meta.deadline == s.now + 10
    assert any(t.kind is TimerKind.EXECUTION_TIMEOUT for t in s.timers.values())
    s.drain()
    assert status(s) == ExecutionStatus.SUCCEEDED
    assert not any(t.kind is TimerKind.EXECUTION_TIMEOUT for t in s.timers.values())


def test_skips_decided_by_a_node_that_runs_again_are_decided_again() -> None:
    spec = {
        "id": "route",
        "nodes": [
            fn("load"),
            node("pick", "switch", "load", cases=[{"name": "big", "when": "data.n > 5"}]),
            fn("big", "pick.big"),
            fn("small", "pick.default"),
        ],
    }
    s = script(spec)
    s.start("route")
    s.drain(failing("load"))
    assert state(s, "big").status == NodeStatus.SKIPPED  # skipped because load failed
    s.send(RETRY)
    s.drain(lambda task: (True, {"n": 9}) if task.node_id == "load" else succeed(task))
    assert status(s) == ExecutionStatus.SUCCEEDED
    assert state(s, "big").status == NodeStatus.SUCCEEDED
    assert state(s, "small").status == NodeStatus.SKIPPED


def test_retry_of_a_failed_loop_runs_its_iterations_again_under_new_ids() -> None:
    spec = {
        "id": "loop",
        "nodes": [
            fn("items"),
            node(
                "each",
                "for_each",
                "items",
                items="${ data }",
                concurrency=1,
                body={"nodes": [fn("work")]},
            ),
            fn("done", "each"),
        ],
    }
    fail_on = {"value": 2}

    def work(task: TaskMessage) -> tuple[bool, Any]:
        if task.node_id == "items":
            return True, [1, 2, 3]
        if task.node_id == "work" and task.input == fail_on["value"]:
            return False, boom(non_retryable=True)
        return True, task.input * 10 if isinstance(task.input, int) else task.input

    s = script(spec)
    s.start("loop")
    s.drain(work)
    assert status(s) == ExecutionStatus.FAILED
    assert state(s, "each").status == NodeStatus.FAILED
    first_children = {eid for eid in s.executions if eid.startswith("e1.each.1.")}
    assert first_children == {"e1.each.1.1", "e1.each.1.2"}
    fail_on["value"] = -1  # the cause is fixed
    mark = len(s.steps)
    s.send(RETRY)
    s.drain(work)
    assert status(s) == ExecutionStatus.SUCCEEDED
    assert state(s, "each").output == [10, 20, 30]
    assert state(s, "each").attempt == 2
    second = {eid for eid in s.executions if eid.startswith("e1.each.2.")}
    assert second == {"e1.each.2.1", "e1.each.2.2", "e1.each.2.3"}
    assert dispatched(s, mark)["items"] == 0


def test_retry_of_a_failed_sub_workflow_starts_a_new_child() -> None:
    sub = node("sub", "sub_workflow", "prep", workflow="child")
    parent = {"id": "parent", "nodes": [fn("prep"), sub]}
    child = {"id": "child", "nodes": [fn("c1")]}
    s = script(parent, child)
    s.start("parent")
    s.drain(failing("c1"))
    assert status(s) == ExecutionStatus.FAILED
    assert status(s, "e1.sub.1") == ExecutionStatus.FAILED
    mark = len(s.steps)
    s.send(RETRY)
    s.drain()
    assert status(s) == ExecutionStatus.SUCCEEDED
    assert status(s, "e1.sub.2") == ExecutionStatus.SUCCEEDED
    assert dispatched(s, mark) == Counter({"c1": 1})
    assert state(s, "sub").children == ("e1.sub.1", "e1.sub.2")


def test_a_child_execution_cannot_be_retried_on_its_own() -> None:
    parent = {"id": "parent", "nodes": [node("sub", "sub_workflow", workflow="child")]}
    child = {"id": "child", "nodes": [fn("c1")]}
    s = script(parent, child)
    s.start("parent")
    s.drain(failing("c1"))
    s.send(RetryCommand(execution_id="e1.sub.1"))
    assert "is a child execution: retry e1 instead" in str(s.steps[-1]["rejection"])


def test_a_delay_and_a_signal_wait_run_again_after_a_retry() -> None:
    spec = {
        "id": "waits",
        "nodes": [
            node("pause", "delay", duration="5s"),
            node("gate", "wait_for_signal", "pause", signal="go", timeout="1h"),
            fn("ship", "gate"),
        ],
    }
    s = script(spec)
    s.start("waits")
    s.fire(TimerKind.DELAY, "pause")
    s.send(CancelCommand(execution_id="e1"))
    s.send(RETRY)
    assert state(s, "gate").attempt == 2
    s.send(SignalCommand(execution_id="e1", name="go", data={"ok": 1}))
    assert s.steps[-1]["rejection"] is None
    s.drain()
    assert status(s) == ExecutionStatus.SUCCEEDED
    assert state(s, "ship").input == {"ok": 1}


# --------------------------------------------------------------- replay
def _plan(spec: Json) -> Any:
    return compile_plan(spec_from_data(spec))


DIAMOND = {
    "id": "diamond",
    "nodes": [fn("a"), fn("b", "a"), fn("c", "b"), fn("d", "c", "e"), fn("e", "a")],
}


def test_replay_from_a_middle_node_reuses_every_other_output() -> None:
    s = script(DIAMOND)
    s.start("diamond", {"x": 1})
    s.drain()
    old = dict(s.executions["e1"].nodes)
    plan = _plan(DIAMOND)
    seed = replay_seed(plan, old, "c")
    assert sorted(seed) == ["a", "b", "e"]  # c and d run again
    assert seed["b"].output == old["b"].output
    assert seed["b"].input is None
    mark = len(s.steps)
    s.send(
        StartExecution(
            execution_id="e2", workflow_id="diamond", input={"x": 1}, replay_of="e1", seed=seed
        )
    )
    s.drain()
    assert status(s, "e2") == ExecutionStatus.SUCCEEDED
    assert dispatched(s, mark) == Counter({"c": 1, "d": 1})
    assert state(s, "c", "e2").input == old["b"].output
    assert s.executions["e2"].meta.replay_of == "e1"
    started = [e for e in events(s, mark) if e["id"] == "e2:started"]
    assert started[0]["data"]["replay_of"] == "e1"


def test_replay_from_a_root_runs_everything_downstream_of_it() -> None:
    s = script(DIAMOND)
    s.start("diamond")
    s.drain()
    assert replay_seed(_plan(DIAMOND), s.executions["e1"].nodes, "a") == {}
    assert downstream(_plan(DIAMOND), "b") == {"b", "c", "d"}


def test_replay_of_a_failed_execution_does_not_seed_what_failed() -> None:
    s = script(DIAMOND)
    s.start("diamond")
    s.drain(failing("e"))
    seed = replay_seed(_plan(DIAMOND), s.executions["e1"].nodes, "c")
    assert "e" not in seed  # e failed (unhandled): it runs again in the replay
    s.send(StartExecution(execution_id="e2", workflow_id="diamond", replay_of="e1", seed=seed))
    s.drain()
    assert status(s, "e2") == ExecutionStatus.SUCCEEDED
    assert state(s, "e", "e2").status == NodeStatus.SUCCEEDED


def test_replay_from_an_unknown_node_names_the_valid_ones() -> None:
    with pytest.raises(InvalidInputError, match=r"'zz' is not a node .*nodes: a, b, c, e, d"):
        replay_seed(_plan(DIAMOND), {}, "zz")


def test_a_seed_keeps_only_settled_states_of_known_nodes() -> None:
    seed = {
        "a": NodeState(status=NodeStatus.SUCCEEDED, output=1, fired=("success", "always")),
        "b": NodeState(status=NodeStatus.RUNNING),
        "ghost": NodeState(status=NodeStatus.SUCCEEDED),
        "e": NodeState(status=NodeStatus.FAILED),  # unhandled: never seeded
    }
    s = script(DIAMOND)
    s.send(StartExecution(execution_id="e2", workflow_id="diamond", replay_of="x", seed=seed))
    meta = s.executions["e2"].meta
    assert meta.unsettled == 4
    assert {t.node_id for t in s.tasks} == {"b", "e"}


@pytest.mark.parametrize(
    ("statuses", "kept"),
    [
        ({"a": "succeeded", "b": "failed"}, ["a"]),
        ({"a": "succeeded", "b": "skipped"}, ["a", "b"]),
        ({"a": "failed", "b": "skipped"}, []),
        ({"a": "cancelled", "b": "succeeded"}, ["b"]),
    ],
)
def test_kept_nodes(statuses: dict[str, str], kept: list[str]) -> None:
    plan = _plan({"id": "two", "nodes": [fn("a"), fn("b", "a")]})
    nodes = {k: NodeState(status=NodeStatus(v)) for k, v in statuses.items()}
    assert list(kept_nodes(plan, nodes)) == kept


def test_fresh_states_serialise_without_the_recovery_fields() -> None:
    dumped = NodeState().model_dump()
    assert "attempt_base" not in dumped
    start = StartExecution(execution_id="x", workflow_id="w").model_dump()
    assert "seed" not in start
    assert "replay_of" not in start
    assert NodeState(attempt_base=2).model_dump()["attempt_base"] == 2


def test_the_retried_event_is_an_execution_event() -> None:
    s = script(CHAIN)
    s.start("chain")
    s.drain(failing("a"))
    s.send(RETRY)
    emitted = [c for c in s.last_commands if isinstance(c, EmitEvent) and not c.node_level]
    assert emitted[0].routing_key == "execution.chain.retried"


def test_the_retry_command_travels_through_the_codec() -> None:
    from spane.bus.codec import decode_inbox, encode_inbox, message_kind

    message = decode_inbox(b'{"command": "retry", "execution_id": "e9"}')
    assert message == RetryCommand(execution_id="e9")
    assert message_kind(message) == "retry"
    start = StartExecution(
        execution_id="e2",
        workflow_id="w",
        replay_of="e1",
        seed={"a": NodeState(status=NodeStatus.SUCCEEDED, output={"x": 1})},
    )
    assert decode_inbox(encode_inbox(start)) == start

"""Lifecycle events: CloudEvents 1.0 on ``execution.<wf>.<status>`` and
``node.<wf>.<node>.<status>``, in order, with deterministic ids (DESIGN §4)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from spane import ExecutionStatus, TaskRegistry
from spane.schemas.events import LifecycleEvent

from .helpers import EventLog, deploy, fn, node, unique_id

RETRY = {"max_attempts": 2, "initial_interval": 0.01, "jitter": False}


def _registry() -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("inc")
    async def inc(data):
        return data + 1

    @reg.task("flaky")
    async def flaky(data, ctx):
        if ctx.attempt == 1:
            raise RuntimeError("flake")
        return data

    @reg.task("broken")
    async def broken(data):
        raise ValueError("broken for good")

    return reg


def _instant(event: LifecycleEvent) -> datetime:
    return datetime.fromisoformat(event.time.replace("Z", "+00:00"))


async def test_events_of_a_chain_arrive_in_order(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = await deploy(engine, "order", fn("a", "inc"), fn("b", "inc", "a"))

    result = await wf.run(1)
    await events.wait_for(result.execution_id, f"execution.{wf.id}.succeeded")

    assert events.keys(result.execution_id) == [
        f"execution.{wf.id}.started",
        f"node.{wf.id}.a.started",
        f"node.{wf.id}.a.succeeded",
        f"node.{wf.id}.b.started",
        f"node.{wf.id}.b.succeeded",
        f"execution.{wf.id}.succeeded",
    ]


async def test_events_are_cloudevents_with_the_documented_fields(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = await deploy(engine, "fields", fn("a", "inc"))

    result = await wf.run(41)
    await events.wait_for(result.execution_id, f"execution.{wf.id}.succeeded")

    for routing_key, event in events.of(result.execution_id):
        status = routing_key.rsplit(".", 1)[1]
        assert event.specversion == "1.0"
        assert event.source == f"/spane/workflows/{wf.id}"
        assert event.subject == result.execution_id
        assert event.datacontenttype == "application/json"
        datetime.fromisoformat(event.time.replace("Z", "+00:00"))
        assert event.id
        data = event.data
        assert data["execution_id"] == result.execution_id
        assert data["workflow_id"] == wf.id
        assert data["version"] == wf.version
        assert data["status"] == status
        if routing_key.startswith("node."):
            assert event.type == f"io.spane.node.{status}"
            assert data["node_id"] == "a"
            assert data["attempt"] == 1
        else:
            assert event.type == f"io.spane.execution.{status}"

    [node_done] = events.find(result.execution_id, f"node.{wf.id}.a.succeeded")
    assert node_done.data["output"] == 42
    [done] = events.find(result.execution_id, f"execution.{wf.id}.succeeded")
    assert done.data["output"] == 42


async def test_retry_failure_and_skip_events_carry_attempts_and_errors(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine,
        "failure-events",
        fn("flaky", "flaky", retry=RETRY),
        fn("broken", "broken", "flaky"),
        fn("skipped", "inc", "broken"),
    )

    result = await wf.run(1)
    await events.wait_for(result.execution_id, f"execution.{wf.id}.failed")

    assert result.status == ExecutionStatus.FAILED
    [retrying] = events.find(result.execution_id, f"node.{wf.id}.flaky.retrying")
    assert retrying.type == "io.spane.node.retrying"
    assert retrying.data["attempt"] == 1
    assert retrying.data["error"]["type"] == "RuntimeError"
    assert retrying.data["error"]["message"] == "flake"
    started = events.find(result.execution_id, f"node.{wf.id}.flaky.started")
    assert [e.data["attempt"] for e in started] == [1, 2]
    [succeeded] = events.find(result.execution_id, f"node.{wf.id}.flaky.succeeded")
    assert succeeded.data["attempt"] == 2
    [failed] = events.find(result.execution_id, f"node.{wf.id}.broken.failed")
    assert failed.data["error"]["type"] == "ValueError"
    assert failed.data["error"]["message"] == "broken for good"
    assert failed.data["error"]["node_id"] == "broken"
    assert events.find(result.execution_id, f"node.{wf.id}.skipped.started") == []
    [execution_failed] = events.find(result.execution_id, f"execution.{wf.id}.failed")
    assert execution_failed.type == "io.spane.execution.failed"
    assert execution_failed.data["error"]["node_id"] == "broken"
    assert execution_failed.data["error"]["type"] == "ValueError"


async def test_skipped_nodes_emit_skipped_events(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine,
        "skip-events",
        fn("a", "inc"),
        fn("b", "inc", "a", when="false"),
        fn("c", "inc", "b"),
    )

    result = await wf.run(1)
    await events.wait_for(result.execution_id, f"execution.{wf.id}.succeeded")

    keys = events.keys(result.execution_id)
    assert f"node.{wf.id}.b.skipped" in keys
    assert f"node.{wf.id}.c.skipped" in keys
    assert keys.index(f"node.{wf.id}.b.skipped") < keys.index(f"node.{wf.id}.c.skipped")
    [skipped] = events.find(result.execution_id, f"node.{wf.id}.b.skipped")
    assert skipped.type == "io.spane.node.skipped"


async def test_event_ids_are_unique_and_derived_from_what_they_report(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = await deploy(engine, "ids", fn("flaky", "flaky", retry=RETRY), fn("b", "inc", "flaky"))

    first_id = unique_id("exec-one")
    second_id = unique_id("exec-two")
    await wf.run(1, execution_id=first_id)
    await wf.run(1, execution_id=second_id)
    await events.wait_for(first_id, f"execution.{wf.id}.succeeded")
    await events.wait_for(second_id, f"execution.{wf.id}.succeeded")

    # the second run came later: a different time must not change the ids
    first_times = [_instant(event) for _, event in events.of(first_id)]
    second_times = [_instant(event) for _, event in events.of(second_id)]
    assert max(first_times) < min(second_times)
    first = [event.id for _, event in events.of(first_id)]
    second = [event.id for _, event in events.of(second_id)]
    assert len(set(first)) == len(first), "two events of one execution share an id"
    assert not set(first) & set(second)
    # same history, other execution: the ids differ only by the execution id
    assert [i.replace(first_id, "<x>") for i in first] == [
        i.replace(second_id, "<x>") for i in second
    ]


async def test_topic_patterns_select_events(make_engine):
    engine = await make_engine(_registry())
    failures = await EventLog.attach(engine, "execution.*.failed")
    one_node = EventLog()
    everything = await EventLog.attach(engine)
    ok = await deploy(engine, "ok", fn("a", "inc"), fn("b", "inc", "a"))
    bad = await deploy(engine, "bad", fn("a", "broken"))
    await engine.subscribe(f"node.{ok.id}.a.#", one_node._record)

    good = await ok.run(1)
    failed = await bad.run(1)
    await everything.wait_for(failed.execution_id, f"execution.{bad.id}.failed")
    await everything.wait_for(good.execution_id, f"execution.{ok.id}.succeeded")

    assert [key for key, _ in failures.events] == [f"execution.{bad.id}.failed"]
    assert [key for key, _ in one_node.events] == [
        f"node.{ok.id}.a.started",
        f"node.{ok.id}.a.succeeded",
    ]


async def test_pause_resume_and_cancel_emit_execution_events(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine, "execution.#")
    wf = await deploy(engine, "control-events", node("wait", "wait_for_signal", signal="go"))

    execution_id = await wf.start()
    await engine.pause(execution_id)
    await engine.resume(execution_id)
    await engine.cancel(execution_id, reason="done testing")
    await events.wait_for(execution_id, f"execution.{wf.id}.cancelled")

    assert events.keys(execution_id) == [
        f"execution.{wf.id}.started",
        f"execution.{wf.id}.paused",
        f"execution.{wf.id}.resumed",
        f"execution.{wf.id}.cancelled",
    ]
    [cancelled] = events.find(execution_id, f"execution.{wf.id}.cancelled")
    assert cancelled.data["status"] == "cancelled"
    assert "done testing" in cancelled.data["error"]["message"]


async def test_node_events_of_a_cancelled_sibling(make_engine):
    reg = TaskRegistry()

    @reg.task("hangs")
    async def hangs(data):
        await asyncio.sleep(5)

    @reg.task("fails")
    async def fails(data):
        await asyncio.sleep(0.02)
        raise RuntimeError("x")

    engine = await make_engine(reg)
    events = await EventLog.attach(engine)
    wf = await deploy(engine, "cancel-events", fn("slow", "hangs"), fn("bad", "fails"))

    result = await wf.run()
    await events.wait_for(result.execution_id, f"execution.{wf.id}.failed")

    keys = events.keys(result.execution_id)
    assert f"node.{wf.id}.slow.cancelled" in keys
    assert keys.index(f"node.{wf.id}.bad.failed") < keys.index(f"node.{wf.id}.slow.cancelled")
    assert keys[-1] == f"execution.{wf.id}.failed"


async def test_repeated_pauses_are_distinct_events(make_engine):
    """Each event has its own id (DESIGN §4): a second pause is news, not a duplicate."""
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine, "execution.#")
    wf = await deploy(engine, "pause-twice", node("wait", "wait_for_signal", signal="go"))

    execution_id = await wf.start()
    for _ in range(2):
        await engine.pause(execution_id)
        await engine.resume(execution_id)
    await engine.signal(execution_id, "go", 1)
    await engine.wait(execution_id, 10)
    await events.wait_for(execution_id, f"execution.{wf.id}.succeeded")

    pauses = events.find(execution_id, f"execution.{wf.id}.paused")
    resumes = events.find(execution_id, f"execution.{wf.id}.resumed")
    assert len(pauses) == 2
    assert len(resumes) == 2
    ids = [event.id for _, event in events.of(execution_id)]
    assert len(set(ids)) == len(ids), f"event ids repeat: {ids}"


async def test_loop_iterations_have_their_own_routing_keys(make_engine):
    """``execution.<wf>.*`` announces top-level executions only; each iteration of a loop
    is ``iteration.<wf>.<loop node>.<status>`` (routing-key grammar version 2)."""
    engine = await make_engine(_registry())
    wf = await deploy(
        engine,
        "each-routing",
        node(
            "each",
            "for_each",
            items="${ input }",
            concurrency=2,
            body={"nodes": [fn("bump", "inc")]},
        ),
    )
    top_level = await EventLog.attach(engine, f"execution.{wf.id}.*")
    iterations = await EventLog.attach(engine, f"iteration.{wf.id}.each.*")

    result = await wf.run([1, 2, 3])

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == [2, 3, 4]
    assert top_level.keys(result.execution_id) == [
        f"execution.{wf.id}.started",
        f"execution.{wf.id}.succeeded",
    ]
    assert {event.subject for _, event in top_level.events} == {result.execution_id}
    for index in (1, 2, 3):
        iteration_id = f"{result.execution_id}.each.1.{index}"
        [done] = await iterations.wait_for(iteration_id, f"iteration.{wf.id}.each.succeeded")
        assert done.data["parent_execution_id"] == result.execution_id

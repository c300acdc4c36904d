"""Lifecycle events: CloudEvents 1.0 on ``execution.<wf>.<status>`` and
``node.<wf>.<node>.<status>``, in order, with deterministic ids (DESIGN §4)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from spane import ExecutionStatus, TaskRegistry

from .helpers import EventLog, fn, node, unique_id

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


async def test_events_of_a_chain_arrive_in_order(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = unique_id("order")
    await engine.register({"id": wf, "nodes": [fn("a", "inc"), fn("b", "inc", "a")]})

    result = await engine.run(wf, 1, timeout=10)
    await events.wait_for(result.execution_id, f"execution.{wf}.succeeded")

    assert events.keys(result.execution_id) == [
        f"execution.{wf}.started",
        f"node.{wf}.a.started",
        f"node.{wf}.a.succeeded",
        f"node.{wf}.b.started",
        f"node.{wf}.b.succeeded",
        f"execution.{wf}.succeeded",
    ]


async def test_events_are_cloudevents_with_the_documented_fields(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = unique_id("fields")
    record = await engine.register({"id": wf, "nodes": [fn("a", "inc")]})

    result = await engine.run(wf, 41, timeout=10)
    await events.wait_for(result.execution_id, f"execution.{wf}.succeeded")

    for routing_key, event in events.of(result.execution_id):
        status = routing_key.rsplit(".", 1)[1]
        assert event.specversion == "1.0"
        assert event.source == f"/spane/workflows/{wf}"
        assert event.subject == result.execution_id
        assert event.datacontenttype == "application/json"
        datetime.fromisoformat(event.time.replace("Z", "+00:00"))
        assert event.id
        data = event.data
        assert data["execution_id"] == result.execution_id
        assert data["workflow_id"] == wf
        assert data["version"] == record.version
        assert data["status"] == status
        if routing_key.startswith("node."):
            assert event.type == f"io.spane.node.{status}"
            assert data["node_id"] == "a"
            assert data["attempt"] == 1
        else:
            assert event.type == f"io.spane.execution.{status}"

    [node_done] = events.find(result.execution_id, f"node.{wf}.a.succeeded")
    assert node_done.data["output"] == 42
    [done] = events.find(result.execution_id, f"execution.{wf}.succeeded")
    assert done.data["output"] == 42


async def test_retry_failure_and_skip_events_carry_attempts_and_errors(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = unique_id("failure-events")
    await engine.register(
        {
            "id": wf,
            "nodes": [
                fn("flaky", "flaky", retry=RETRY),
                fn("broken", "broken", "flaky"),
                fn("skipped", "inc", "broken"),
            ],
        }
    )

    result = await engine.run(wf, 1, timeout=10)
    await events.wait_for(result.execution_id, f"execution.{wf}.failed")

    assert result.status == ExecutionStatus.FAILED
    [retrying] = events.find(result.execution_id, f"node.{wf}.flaky.retrying")
    assert retrying.type == "io.spane.node.retrying"
    assert retrying.data["attempt"] == 1
    assert retrying.data["error"]["type"] == "RuntimeError"
    assert retrying.data["error"]["message"] == "flake"
    started = events.find(result.execution_id, f"node.{wf}.flaky.started")
    assert [e.data["attempt"] for e in started] == [1, 2]
    [succeeded] = events.find(result.execution_id, f"node.{wf}.flaky.succeeded")
    assert succeeded.data["attempt"] == 2
    [failed] = events.find(result.execution_id, f"node.{wf}.broken.failed")
    assert failed.data["error"]["type"] == "ValueError"
    assert failed.data["error"]["message"] == "broken for good"
    assert failed.data["error"]["node_id"] == "broken"
    assert events.find(result.execution_id, f"node.{wf}.skipped.started") == []
    [execution_failed] = events.find(result.execution_id, f"execution.{wf}.failed")
    assert execution_failed.type == "io.spane.execution.failed"
    assert execution_failed.data["error"]["node_id"] == "broken"
    assert execution_failed.data["error"]["type"] == "ValueError"


async def test_skipped_nodes_emit_skipped_events(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = unique_id("skip-events")
    await engine.register(
        {
            "id": wf,
            "nodes": [fn("a", "inc"), fn("b", "inc", "a", when="false"), fn("c", "inc", "b")],
        }
    )

    result = await engine.run(wf, 1, timeout=10)
    await events.wait_for(result.execution_id, f"execution.{wf}.succeeded")

    keys = events.keys(result.execution_id)
    assert f"node.{wf}.b.skipped" in keys
    assert f"node.{wf}.c.skipped" in keys
    assert keys.index(f"node.{wf}.b.skipped") < keys.index(f"node.{wf}.c.skipped")
    [skipped] = events.find(result.execution_id, f"node.{wf}.b.skipped")
    assert skipped.type == "io.spane.node.skipped"


async def test_event_ids_are_unique_and_derived_from_what_they_report(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine)
    wf = unique_id("ids")
    await engine.register(
        {"id": wf, "nodes": [fn("flaky", "flaky", retry=RETRY), fn("b", "inc", "flaky")]}
    )

    first_id = unique_id("exec-one")
    second_id = unique_id("exec-two")
    await engine.run(wf, 1, timeout=10, execution_id=first_id)
    await asyncio.sleep(0.02)  # a different time must not change the ids
    await engine.run(wf, 1, timeout=10, execution_id=second_id)
    await events.wait_for(second_id, f"execution.{wf}.succeeded")

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
    ok = unique_id("ok")
    bad = unique_id("bad")
    await engine.subscribe(f"node.{ok}.a.#", one_node._record)
    await engine.register({"id": ok, "nodes": [fn("a", "inc"), fn("b", "inc", "a")]})
    await engine.register({"id": bad, "nodes": [fn("a", "broken")]})

    good = await engine.run(ok, 1, timeout=10)
    failed = await engine.run(bad, 1, timeout=10)
    await everything.wait_for(failed.execution_id, f"execution.{bad}.failed")
    await everything.wait_for(good.execution_id, f"execution.{ok}.succeeded")

    assert [key for key, _ in failures.events] == [f"execution.{bad}.failed"]
    assert [key for key, _ in one_node.events] == [f"node.{ok}.a.started", f"node.{ok}.a.succeeded"]


async def test_pause_resume_and_cancel_emit_execution_events(make_engine):
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine, "execution.#")
    wf = unique_id("control-events")
    await engine.register({"id": wf, "nodes": [node("wait", "wait_for_signal", signal="go")]})

    execution_id = await engine.start(wf, None)
    await engine.pause(execution_id)
    await engine.resume(execution_id)
    await engine.cancel(execution_id, reason="done testing")
    await events.wait_for(execution_id, f"execution.{wf}.cancelled")

    assert events.keys(execution_id) == [
        f"execution.{wf}.started",
        f"execution.{wf}.paused",
        f"execution.{wf}.resumed",
        f"execution.{wf}.cancelled",
    ]
    [cancelled] = events.find(execution_id, f"execution.{wf}.cancelled")
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
    wf = unique_id("cancel-events")
    await engine.register({"id": wf, "nodes": [fn("slow", "hangs"), fn("bad", "fails")]})

    result = await engine.run(wf, None, timeout=10)
    await events.wait_for(result.execution_id, f"execution.{wf}.failed")

    keys = events.keys(result.execution_id)
    assert f"node.{wf}.slow.cancelled" in keys
    assert keys.index(f"node.{wf}.bad.failed") < keys.index(f"node.{wf}.slow.cancelled")
    assert keys[-1] == f"execution.{wf}.failed"


async def test_repeated_pauses_are_distinct_events(make_engine):
    """Each event has its own id (DESIGN §4): a second pause is news, not a duplicate."""
    engine = await make_engine(_registry())
    events = await EventLog.attach(engine, "execution.#")
    wf = unique_id("pause-twice")
    await engine.register({"id": wf, "nodes": [node("wait", "wait_for_signal", signal="go")]})

    execution_id = await engine.start(wf, None)
    for _ in range(2):
        await engine.pause(execution_id)
        await engine.resume(execution_id)
    await engine.signal(execution_id, "go", 1)
    await engine.wait(execution_id, 10)
    await events.wait_for(execution_id, f"execution.{wf}.succeeded")

    pauses = events.find(execution_id, f"execution.{wf}.paused")
    resumes = events.find(execution_id, f"execution.{wf}.resumed")
    assert len(pauses) == 2
    assert len(resumes) == 2
    ids = [event.id for _, event in events.of(execution_id)]
    assert len(set(ids)) == len(ids), f"event ids repeat: {ids}"

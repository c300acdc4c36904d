"""Trigger events (DESIGN §2): a message on the triggers exchange starts executions.

Trigger events are handled in the order they were published, so once a later event's
execution exists, every earlier event has been handled: that is when a test looks for
executions that must not exist."""

from __future__ import annotations

from spane import ExecutionStatus, TaskRegistry

from .helpers import WAIT, EventLog, deploy, fn


def _registry() -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("echo")
    async def echo(data):
        return data

    return reg


async def test_matching_event_starts_an_execution_with_its_data(make_engine) -> None:
    engine = await make_engine(_registry())
    wf = await deploy(
        engine,
        "trig",
        fn("a", "echo"),
        triggers=[{"event": "order.*", "filter": "event.data.total > 0"}],
    )
    events = await EventLog.attach(engine, f"execution.{wf.id}.*")
    await engine.publish_trigger("order.created", {"total": 0})  # filtered out
    await engine.publish_trigger("invoice.created", {"total": 5})  # another event type
    await engine.publish_trigger("order.created", {"total": 7})
    [(_, done)] = await events.wait_for_key(f"execution.{wf.id}.succeeded")
    result = await engine.wait(done.subject, WAIT)
    assert (result.status, result.output) == (ExecutionStatus.SUCCEEDED, {"total": 7})

    # the two earlier events were handled before this one started anything
    assert [meta.id for meta in await engine.list_executions(wf.id)] == [done.subject]
    assert len(events.with_key(f"execution.{wf.id}.started")) == 1


async def test_cloudevent_and_input_mapping(make_engine) -> None:
    engine = await make_engine(_registry())
    wf = await deploy(
        engine,
        "trig-ce",
        fn("a", "echo"),
        triggers=[
            {
                "event": "user.signed_up",
                "input": {"who": "${ event.data.name }", "source": "${ event.source }"},
            }
        ],
    )
    events = await EventLog.attach(engine, f"execution.{wf.id}.succeeded")
    cloud_event = {
        "specversion": "1.0",
        "type": "user.signed_up",
        "source": "/signup",
        "id": "evt-1",
        "data": {"name": "ada"},
    }
    await engine.publish_trigger("user.signed_up", cloud_event)
    [(_, done)] = await events.wait_for_key(f"execution.{wf.id}.succeeded")
    result = await engine.wait(done.subject, WAIT)
    assert result.output == {"who": "ada", "source": "/signup"}


async def test_idempotency_key_starts_once(make_engine) -> None:
    engine = await make_engine(_registry())
    wf = await deploy(engine, "trig-idem", fn("a", "echo"), triggers=[{"event": "ping"}])
    events = await EventLog.attach(engine, f"execution.{wf.id}.started")
    for _ in range(3):
        await engine.publish_trigger("ping", {"n": 1}, idempotency_key="k-1")
    # a later event with another key: once it started, the three before it were handled
    await engine.publish_trigger("ping", {"n": 2}, idempotency_key="k-2")

    started = await events.wait_for_key(f"execution.{wf.id}.started", count=2)

    executions = await engine.list_executions(wf.id)
    assert sorted(meta.input["n"] for meta in executions) == [1, 2]
    assert sorted(event.data["execution_id"] for _, event in started) == sorted(
        meta.id for meta in executions
    )
    assert len(events.with_key(f"execution.{wf.id}.started")) == 2

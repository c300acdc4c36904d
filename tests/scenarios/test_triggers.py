"""Trigger events (DESIGN §2): a message on the triggers exchange starts executions."""

from __future__ import annotations

import asyncio

from spane import ExecutionStatus, TaskRegistry

from .helpers import EventLog, fn, unique_id

WAIT = 10.0


def _registry() -> TaskRegistry:
    reg = TaskRegistry()

    @reg.task("echo")
    async def echo(data):
        return data

    return reg


async def test_matching_event_starts_an_execution_with_its_data(make_engine) -> None:
    engine = await make_engine(_registry())
    wf = unique_id("trig")
    events = await EventLog.attach(engine, f"execution.{wf}.*")
    await engine.register(
        {
            "id": wf,
            "triggers": [{"event": "order.*", "filter": "event.data.total > 0"}],
            "nodes": [fn("a", "echo")],
        }
    )
    await engine.publish_trigger("order.created", {"total": 0})  # filtered out
    await engine.publish_trigger("invoice.created", {"total": 5})  # another event type
    await engine.publish_trigger("order.created", {"total": 7})
    [(_, done)] = await events.wait_for_key(f"execution.{wf}.succeeded", timeout=WAIT)
    result = await engine.wait(done.subject, WAIT)
    assert (result.status, result.output) == (ExecutionStatus.SUCCEEDED, {"total": 7})
    await asyncio.sleep(0.5)
    assert len(events.with_key(f"execution.{wf}.started")) == 1


async def test_cloudevent_and_input_mapping(make_engine) -> None:
    engine = await make_engine(_registry())
    wf = unique_id("trig-ce")
    events = await EventLog.attach(engine, f"execution.{wf}.succeeded")
    await engine.register(
        {
            "id": wf,
            "triggers": [
                {
                    "event": "user.signed_up",
                    "input": {"who": "${ event.data.name }", "source": "${ event.source }"},
                }
            ],
            "nodes": [fn("a", "echo")],
        }
    )
    cloud_event = {
        "specversion": "1.0",
        "type": "user.signed_up",
        "source": "/signup",
        "id": "evt-1",
        "data": {"name": "ada"},
    }
    await engine.publish_trigger("user.signed_up", cloud_event)
    [(_, done)] = await events.wait_for_key(f"execution.{wf}.succeeded", timeout=WAIT)
    result = await engine.wait(done.subject, WAIT)
    assert result.output == {"who": "ada", "source": "/signup"}


async def test_idempotency_key_starts_once(make_engine) -> None:
    engine = await make_engine(_registry())
    wf = unique_id("trig-idem")
    events = await EventLog.attach(engine, f"execution.{wf}.started")
    await engine.register({"id": wf, "triggers": [{"event": "ping"}], "nodes": [fn("a", "echo")]})
    for _ in range(3):
        await engine.publish_trigger("ping", {"n": 1}, idempotency_key="k-1")
    await events.wait_for_key(f"execution.{wf}.started", timeout=WAIT)
    await asyncio.sleep(1.0)
    assert len(events.with_key(f"execution.{wf}.started")) == 1

"""Node-level events are built only when someone can receive them (embedded bus)."""

from __future__ import annotations

from typing import Any

import pytest

from spane import Engine, TaskRegistry
from spane.bus.memory import MemoryBus
from spane.bus.rabbit import RabbitBus
from spane.config import Settings
from spane.core.options import CoreOptions
from spane.orchestrator.apply import Transitions
from spane.orchestrator.plan_cache import PlanCache
from spane.schemas.events import LifecycleEvent
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore


async def ignore(routing_key: str, event: LifecycleEvent) -> None:
    return None


@pytest.mark.parametrize(
    ("patterns", "wanted"),
    [
        ([], False),
        (["execution.#"], False),
        (["execution.#", "node.orders.*.failed"], True),
        (["#"], True),
        (["*.orders.#"], True),
        (["#.succeeded"], True),
    ],
)
async def test_memory_bus_knows_whether_node_events_can_be_received(
    patterns: list[str], wanted: bool
) -> None:
    bus = MemoryBus()
    for pattern in patterns:
        await bus.subscribe_events(pattern, ignore)
    assert bus.node_events_wanted() is wanted


async def test_a_stopped_subscription_no_longer_counts() -> None:
    bus = MemoryBus()
    subscription = await bus.subscribe_events("node.#", ignore)
    assert bus.node_events_wanted()
    await subscription.stop()
    assert not bus.node_events_wanted()


def test_a_broker_bus_always_wants_them() -> None:
    assert RabbitBus("amqp://guest:guest@localhost/").node_events_wanted()


def transitions(options: CoreOptions, wanted: Any) -> Transitions:
    store = MemoryStateStore()
    plans = PlanCache(MemoryDefinitionStore())
    return Transitions(store, plans, options, lambda: 0.0, 1024, node_events_wanted=wanted)


def test_current_options_turn_node_events_off_only_while_nobody_listens() -> None:
    listening = [False]
    core = transitions(CoreOptions(node_events=True, max_depth=4), lambda: listening[0])
    assert core.current_options() == CoreOptions(node_events=False, max_depth=4)
    listening[0] = True
    assert core.current_options() == CoreOptions(node_events=True, max_depth=4)
    assert transitions(CoreOptions(), None).current_options().node_events
    off = transitions(CoreOptions(node_events=False), lambda: True)
    assert not off.current_options().node_events  # configured off stays off


async def test_embedded_engine_publishes_node_events_once_subscribed() -> None:
    registry = TaskRegistry()

    @registry.task("noop")
    async def noop(data: Any) -> dict[str, Any]:
        return {}

    node = {"id": "a", "type": "function", "function": "noop"}
    async with Engine(settings=Settings(), registry=registry, pools=["function"]) as engine:
        await engine.register({"id": "quiet", "nodes": [node]})
        await engine.run("quiet", {}, timeout=5)  # nobody listens: nothing to deliver
        seen: list[str] = []

        async def collect(routing_key: str, event: LifecycleEvent) -> None:
            seen.append(routing_key)

        await engine.subscribe("node.#", collect)
        await engine.run("quiet", {}, timeout=5)
        assert seen == ["node.quiet.a.started", "node.quiet.a.succeeded"]

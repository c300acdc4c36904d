"""Retry and replay, the client side of :meth:`Engine.retry` and :meth:`Engine.replay`.

The decisions are pure (:mod:`spane.core.recovery`); this module does the I/O around
them: sending the :class:`~spane.schemas.messages.RetryCommand` (and telling an expired
execution from an unknown one), reading the execution a replay starts from (runtime
state, else the archive) and sending the replay's start.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

from spane.bus.base import Bus, Reply
from spane.compiler.plan import Plan
from spane.config import Settings
from spane.core.recovery import replay_seed
from spane.errors import (
    CommandRejectedError,
    ExecutionNotFoundError,
    InvalidInputError,
    WorkflowNotFoundError,
)
from spane.expressions.limits import check_value
from spane.observability import tracing
from spane.orchestrator.plan_cache import PlanCache
from spane.schemas.messages import InboxMessage, RetryCommand, StartExecution
from spane.schemas.state import ExecutionMeta, NodeState
from spane.state.base import DefinitionStore


class _SameInput:
    def __repr__(self) -> str:
        return "SAME_INPUT"


SAME_INPUT: Final[Any] = _SameInput()
"""Default ``input`` of a replay: the replayed execution's own input."""

Send = Callable[[InboxMessage], Awaitable[Reply]]


class Snapshot(Protocol):
    @property
    def meta(self) -> ExecutionMeta: ...

    @property
    def nodes(self) -> dict[str, NodeState]: ...


class Client(Protocol):
    """What a replay needs of the :class:`~spane.engine.Engine`."""

    settings: Settings
    plans: PlanCache
    bus: Bus

    async def describe(self, execution_id: str) -> Snapshot: ...


async def retry(command: Send, definitions: DefinitionStore, execution_id: str) -> None:
    """Send the retry; an execution whose runtime state is gone but whose archive
    remains is refused as expired (:class:`CommandRejectedError`)."""
    try:
        await command(RetryCommand(execution_id=execution_id))
    except ExecutionNotFoundError:
        if await definitions.get_archived(execution_id) is None:
            raise
        raise CommandRejectedError(
            f"execution {execution_id!r} is no longer retryable: expired (its runtime state "
            "is gone; replay it instead)"
        ) from None


def replay_start(
    plan: Plan,
    meta: ExecutionMeta,
    nodes: Mapping[str, NodeState],
    from_node: str,
    input: Any = SAME_INPUT,
    *,
    max_value_bytes: int,
    execution_id: str | None = None,
) -> StartExecution:
    """The start of a replay of ``meta``'s execution from ``from_node`` (same workflow
    version and priority; the old input unless ``input`` is given). Raises
    :class:`InvalidInputError` for an unknown node or an input over the limits,
    :class:`CommandRejectedError` for a loop iteration (replay its parent)."""
    if meta.body is not None:
        parent = meta.parent.execution_id if meta.parent else "its parent"
        raise CommandRejectedError(
            f"execution {meta.id} is a loop iteration: replay {parent} instead"
        )
    seed = replay_seed(plan, nodes, from_node)
    data = meta.input if input is SAME_INPUT else input
    problem = check_value(data, what="execution input", schema=None, max_bytes=max_value_bytes)
    if problem is not None:
        raise InvalidInputError(problem)
    return StartExecution(
        execution_id=execution_id or uuid.uuid4().hex,
        workflow_id=meta.workflow_id,
        version=meta.version,
        input=data,
        priority=meta.priority,
        replay_of=meta.id,
        seed=seed,
    )


async def replay(client: Client, execution_id: str, from_node: str, input: Any) -> str:
    """Start the replay of ``execution_id`` (runtime state, else the archive) from
    ``from_node``; returns the new execution's id."""
    old = await client.describe(execution_id)
    meta = old.meta
    plan = await client.plans.get(meta.workflow_id, meta.version, meta.body)
    limit = client.settings.max_value_bytes
    start = replay_start(plan, meta, old.nodes, from_node, input, max_value_bytes=limit)
    return await send_start(client.bus.request, start)


async def send_start(request: Send, message: StartExecution) -> str:
    """Send a start and return the execution id (``Engine.start``'s error mapping)."""
    with tracing.starting(message) as message:
        reply = await request(message)
    if not reply.get("ok"):
        error = str(reply.get("error"))
        if "not registered" in error or "has no version" in error:
            raise WorkflowNotFoundError(error)
        raise InvalidInputError(error)
    return str(reply["execution_id"])


__all__ = ["SAME_INPUT", "Client", "replay", "replay_start", "retry", "send_start"]

"""The operations behind the :class:`~spane.engine.Engine`: reading a definition, the
error mapping of control commands, archived executions, dead letters, pool statistics
and readiness checks. Plain functions over the stores and the bus the engine passes in
at each call (so a store replaced on the engine is the one used)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from spane.bus.base import Bus, QueueStats, Reply
from spane.bus.dead_letters import DeadLetter
from spane.errors import (
    CommandRejectedError,
    ExecutionNotFoundError,
    InvalidMessageError,
    NotFoundError,
)
from spane.schemas.loader import load_workflow_file, spec_from_data
from spane.schemas.messages import InboxMessage
from spane.schemas.pools import workflow_pools
from spane.schemas.state import ExecutionMeta, NodeState
from spane.schemas.workflow import WorkflowSpec
from spane.state.base import DefinitionStore, StateStore

__all__ = [
    "archived_execution",
    "check_backends",
    "drop_dead_letter",
    "get_dead_letter",
    "pool_stats",
    "redrive_dead_letter",
    "send_command",
    "workflow_spec",
]


def workflow_spec(workflow: WorkflowSpec | Mapping[str, Any] | str) -> WorkflowSpec:
    """A definition given as a spec, as its data, or as the path of its file."""
    if isinstance(workflow, str):
        return load_workflow_file(workflow)
    if isinstance(workflow, WorkflowSpec):
        return workflow
    return spec_from_data(dict(workflow))


async def send_command(
    request: Callable[[InboxMessage], Awaitable[Reply]], message: InboxMessage
) -> Reply:
    """Send a control command to the orchestrators; a refusal raises
    :class:`~spane.errors.ExecutionNotFoundError` or
    :class:`~spane.errors.CommandRejectedError`."""
    reply = await request(message)
    if not reply.get("ok"):
        error = str(reply.get("error"))
        if error.endswith("not found"):
            raise ExecutionNotFoundError(error)
        raise CommandRejectedError(error)
    return reply


async def archived_execution(
    definitions: DefinitionStore, execution_id: str
) -> tuple[ExecutionMeta, dict[str, NodeState]] | None:
    """An execution's metadata and nodes from the archive, or None if not archived."""
    record = await definitions.get_archived(execution_id)
    if record is None:
        return None
    fields = {k: v for k, v in record.items() if k in ExecutionMeta.model_fields}
    nodes = record.get("nodes") or {}
    return (
        ExecutionMeta.model_validate(fields),
        {node_id: NodeState.model_validate(node) for node_id, node in nodes.items()},
    )


async def get_dead_letter(definitions: DefinitionStore, entry_id: str) -> dict[str, Any]:
    """One stored dead letter. Raises :class:`~spane.errors.NotFoundError`."""
    entry = await definitions.get_dead_letter(entry_id)
    if entry is None:
        raise NotFoundError(f"dead letter {entry_id!r} not found")
    return entry


async def redrive_dead_letter(bus: Bus, definitions: DefinitionStore, entry_id: str) -> DeadLetter:
    """Re-publish a dead letter to its original exchange and routing key, then forget it
    (kept if the publication fails)."""
    try:
        entry = DeadLetter.from_record(await get_dead_letter(definitions, entry_id))
    except InvalidMessageError as exc:
        raise CommandRejectedError(f"cannot redrive {entry_id!r}: {exc}") from exc
    await bus.redrive(entry)
    await definitions.delete_dead_letter(entry_id)
    return entry


async def drop_dead_letter(definitions: DefinitionStore, entry_id: str) -> None:
    """Forget a dead letter. Raises :class:`~spane.errors.NotFoundError`."""
    if not await definitions.delete_dead_letter(entry_id):
        raise NotFoundError(f"dead letter {entry_id!r} not found")


async def pool_stats(
    bus: Bus, definitions: DefinitionStore, names: Iterable[str]
) -> dict[str, QueueStats]:
    """Ready messages and consumers of the pools ``names`` and of every pool registered
    workflows' latest versions name."""
    pools = set(names)
    for record in await definitions.list_workflows():
        pools.update(pool.pool for pool in workflow_pools(record.spec))
    return await bus.pool_stats(sorted(pools))


async def check_backends(
    is_open: bool, bus: Bus, state: StateStore, definitions: DefinitionStore, timeout: float
) -> dict[str, str | None]:
    """Readiness of the engine and each backend: ``None`` when usable, else why not.

    The bus reports its connection when it knows it (RabbitMQ); the stores answer a
    cheap read within ``timeout`` seconds."""
    checks: dict[str, str | None] = {"engine": None if is_open else "not open"}
    connected = getattr(bus, "connected", True)
    checks["bus"] = None if connected else "not connected"
    probes: dict[str, Any] = {
        "state": state.get_meta("spane-readiness-probe"),
        "definitions": definitions.list_dead_letters(limit=1),
    }
    for name, probe in probes.items():
        try:
            async with asyncio.timeout(timeout):
                await probe
            checks[name] = None
        except Exception as exc:
            checks[name] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return checks

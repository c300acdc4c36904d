"""Lifecycle events: CloudEvents 1.0, structured JSON mode, and their routing keys.

Routing-key grammar, version 2 (``ROUTING_VERSION``; docs/events.md):

    execution.<workflow>.<status>            a top-level execution
    child.<workflow>.<status>                an execution started by a sub_workflow node
    iteration.<workflow>.<loop node>.<status>  one iteration of a loop (its body's run)
    node.<workflow>.<node>.<status>          a node of any of them

Version 1 announced children and iterations as ``execution.<workflow>.<status>``, so a
subscriber to ``execution.orders.*`` received one event per loop iteration too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"


class LifecycleEvent(BaseModel):
    """One CloudEvent; ``id`` is derived from what it reports, so re-publication dedupes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    type: str
    source: str
    subject: str
    time: str
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]


@lru_cache(maxsize=256)
def iso_time(timestamp: float) -> str:
    """RFC 3339 in UTC. Cached: every event of one decision shares its timestamp."""
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


ROUTING_VERSION = 2
"""Version of the routing-key grammar above."""

NODE_EVENT_PREFIX = "io.spane.node."


def is_node_event(event: LifecycleEvent) -> bool:
    """Whether ``event`` reports a node (not an execution, child or iteration)."""
    return event.type.startswith(NODE_EVENT_PREFIX)


def execution_routing_key(
    workflow_id: str, status: str, *, child: bool = False, loop_node: str | None = None
) -> str:
    """``execution.``, ``child.`` or ``iteration.`` key of an execution event."""
    if loop_node is not None:
        return f"iteration.{workflow_id}.{loop_node}.{status}"
    if child:
        return f"child.{workflow_id}.{status}"
    return f"execution.{workflow_id}.{status}"


def execution_event(
    *,
    execution_id: str,
    workflow_id: str,
    version: int,
    status: str,
    now: float,
    extra: dict[str, Any] | None = None,
    seq: int | None = None,
    child: bool = False,
    loop_node: str | None = None,
) -> tuple[str, LifecycleEvent]:
    """The routing key (:func:`execution_routing_key`) and the event.

    The id is ``<execution>:<status>`` (``:<seq>`` for statuses that repeat: paused,
    resumed), so a re-published event keeps its id and consumers can deduplicate."""
    data: dict[str, Any] = {
        "execution_id": execution_id,
        "workflow_id": workflow_id,
        "version": version,
        "status": status,
        **(extra or {}),
    }
    event = LifecycleEvent(
        id=f"{execution_id}:{status}" if seq is None else f"{execution_id}:{status}:{seq}",
        type=f"io.spane.execution.{status}",
        source=f"/spane/workflows/{workflow_id}",
        subject=execution_id,
        time=iso_time(now),
        data=data,
    )
    return execution_routing_key(workflow_id, status, child=child, loop_node=loop_node), event


def node_event(
    *,
    execution_id: str,
    workflow_id: str,
    version: int,
    node_id: str,
    attempt: int,
    status: str,
    now: float,
    extra: dict[str, Any] | None = None,
) -> tuple[str, LifecycleEvent]:
    """Routing key ``node.<workflow>.<node>.<status>`` and its event."""
    data: dict[str, Any] = {
        "execution_id": execution_id,
        "workflow_id": workflow_id,
        "version": version,
        "node_id": node_id,
        "attempt": attempt,
        "status": status,
        **(extra or {}),
    }
    event = LifecycleEvent(
        id=f"{execution_id}:{node_id}:{attempt}:{status}",
        type=f"{NODE_EVENT_PREFIX}{status}",
        source=f"/spane/workflows/{workflow_id}",
        subject=execution_id,
        time=iso_time(now),
        data=data,
    )
    return f"node.{workflow_id}.{node_id}.{status}", event

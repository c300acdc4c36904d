"""A worker's claim on a task attempt, as the orchestrator reads it (liveness checks)."""

from __future__ import annotations

from dataclasses import dataclass

from spane.schemas.messages import TaskResult


@dataclass(frozen=True, slots=True)
class ClaimInfo:
    """Who holds a task id, until when, and its result once finished."""

    worker_id: str
    expires_at: float
    result: TaskResult | None = None

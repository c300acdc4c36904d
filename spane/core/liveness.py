"""Is the worker running an attempt alive? Decided from its claim. Pure.

A liveness timer is armed with every dispatched attempt; when it fires the service
reads the attempt's claim (and, when a result is stored, the node's state) and asks
:func:`liveness` what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from spane.core.ids import task_id
from spane.schemas.claims import ClaimInfo
from spane.schemas.messages import AttemptLost, TaskResult
from spane.schemas.state import NodeState, NodeStatus, Timer


@dataclass(frozen=True, slots=True)
class CheckAgain:
    """Not claimed yet (still queued) or the claim is live: look again at ``timer``."""

    timer: Timer


@dataclass(frozen=True, slots=True)
class Deliver:
    """The worker stored a result that never reached the orchestrator: apply it."""

    result: TaskResult


@dataclass(frozen=True, slots=True)
class Lost:
    """The claim expired without a result: the attempt lost its worker."""

    message: AttemptLost


@dataclass(frozen=True, slots=True)
class Settled:
    """The attempt is over (its result was applied, or it was superseded): nothing to do."""


LivenessVerdict = CheckAgain | Deliver | Lost | Settled


def liveness(
    timer: Timer,
    claim: ClaimInfo | None,
    node: NodeState | None,
    now: float,
    period: float,
) -> LivenessVerdict:
    """``node`` is only needed (and only read by the caller) when the claim holds a result."""
    if timer.node_id is None:
        return Settled()
    if claim is None or (claim.result is None and claim.expires_at > now):
        return CheckAgain(timer.model_copy(update={"fire_at": now + period}))
    if claim.result is not None:
        running = node is not None and node.status == NodeStatus.RUNNING
        if running and node is not None and node.attempt == timer.attempt:
            return Deliver(claim.result)
        return Settled()
    task = task_id(timer.execution_id, timer.node_id, timer.attempt)
    reason = f"worker {claim.worker_id} stopped renewing its claim on {task}"
    return Lost(
        AttemptLost(
            execution_id=timer.execution_id,
            node_id=timer.node_id,
            attempt=timer.attempt,
            reason=reason,
        )
    )

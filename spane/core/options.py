"""Knobs of the decision core that come from configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CoreOptions:
    """Knobs of the decision core that come from configuration."""

    node_events: bool = True
    """Emit node-level lifecycle events (turn off for very high-volume workflows)."""
    max_depth: int = 10
    """Deepest allowed nesting of sub-workflows and loops."""
    liveness: float = 5.0
    """Seconds between checks that a running attempt's worker is alive (its claim)."""

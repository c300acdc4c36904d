"""Process-wide metric hooks for the adapters (the bus), which get no ``Metrics`` object.

The bus calls these functions; they do nothing until a process installs its metrics
(:meth:`spane.observability.metrics.Metrics.install`), so calling them costs one global
read when metrics are off. This module imports nothing (the bus may import it without
loading ``prometheus_client``).
"""

from __future__ import annotations

from typing import Protocol

__all__ = [
    "DEAD_LETTER_REASONS",
    "PUBLISH_KINDS",
    "HookSink",
    "installed",
    "observe_publish_confirm",
    "record_dead_letter",
    "set_sink",
]

DEAD_LETTER_REASONS = frozenset(
    {"undecodable", "invalid", "handler_failed", "delivery_limit", "rejected", "expired", "other"}
)
"""The bounded reason classes of ``spane_dead_letters_total``; anything else is ``other``."""

PUBLISH_KINDS = frozenset({"tasks", "inbox", "events", "cancel", "trigger", "reply", "other"})
"""The bounded ``kind`` label of ``spane_publish_confirm_seconds``."""


class HookSink(Protocol):
    def dead_letter(self, queue: str, reason_class: str) -> None: ...

    def publish_confirm(self, kind: str, seconds: float) -> None: ...


_sink: HookSink | None = None


def set_sink(sink: HookSink | None) -> None:
    """Route the hooks to ``sink`` (None: the hooks do nothing)."""
    global _sink
    _sink = sink


def installed() -> HookSink | None:
    return _sink


def record_dead_letter(queue: str, reason_class: str) -> None:
    """A message was dead-lettered from ``queue`` (a queue name, bounded by the topology)
    for ``reason_class`` (one of :data:`DEAD_LETTER_REASONS`; others count as ``other``)."""
    sink = _sink
    if sink is not None:
        sink.dead_letter(queue, reason_class if reason_class in DEAD_LETTER_REASONS else "other")


def observe_publish_confirm(kind: str, seconds: float) -> None:
    """One publication of ``kind`` (:data:`PUBLISH_KINDS`) took ``seconds`` from the first
    publish to its last broker confirm."""
    sink = _sink
    if sink is not None:
        sink.publish_confirm(kind if kind in PUBLISH_KINDS else "other", seconds)

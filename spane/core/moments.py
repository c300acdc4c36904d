"""Moments in words, for explanations: a UNIX time as ISO 8601 UTC. Pure (a conversion,
not a clock read)."""

from __future__ import annotations

from datetime import UTC, datetime


def moment(at: float | None) -> str:
    """A UNIX time as ISO 8601 UTC, to the millisecond."""
    if at is None:
        return "an unknown time"
    stamp = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def at_moment(at: float | None, word: str = "at") -> str:
    """`` at <moment>`` (or another preposition), or nothing when the time is unknown."""
    return "" if at is None else f" {word} {moment(at)}"

"""Wording shared by the validation checks: hints and counted nouns. Pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["count", "did_you_mean"]


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """``did you mean 'charge'?`` for the closest candidate, or ``None``."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1)
    return f"did you mean {matches[0]!r}?" if matches else None


def count(number: int, noun: str) -> str:
    """``1 fired edge``, ``2 fired edges``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"

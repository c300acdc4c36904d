"""AMQP topic matching (``*`` one word, ``#`` zero or more), shared by the trigger
matcher and the in-memory bus. Pure."""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=1024)
def _topic_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for word in pattern.split("."):
        if word == "#":
            parts.append(r"(?:[^.]+(?:\.[^.]+)*)?")
        elif word == "*":
            parts.append(r"[^.]+")
        else:
            parts.append(re.escape(word))
    regex = r"\.".join(parts).replace(r"\.(?:[^.]+(?:\.[^.]+)*)?", r"(?:\.[^.]+)*")
    regex = regex.replace(r"(?:[^.]+(?:\.[^.]+)*)?\.", r"(?:[^.]+\.)*")
    return re.compile(f"^{regex}$")


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is one word, ``#`` zero or more words."""
    return _topic_regex(pattern).match(routing_key) is not None

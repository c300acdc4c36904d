"""Exchange, queue and routing-key names (DESIGN §4), built in one place."""

from __future__ import annotations

import re
from functools import lru_cache

TASKS_EXCHANGE = "spane.tasks"
ORCHESTRATOR_EXCHANGE = "spane.orchestrator"
ORCHESTRATOR_QUEUE = "spane.orchestrator"
TRIGGERS_EXCHANGE = "spane.triggers"
EVENTS_EXCHANGE = "spane.events"
DEAD_LETTER_EXCHANGE = "spane.dlx"
DEAD_LETTER_QUEUE = "spane.dead-letters"
CANCEL_EXCHANGE = "spane.cancellations"


def task_queue(task_type: str) -> str:
    return f"{TASKS_EXCHANGE}.{task_type}"


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

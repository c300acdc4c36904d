"""Exchange, queue and routing-key names (DESIGN §4), built in one place."""

from __future__ import annotations

from dataclasses import dataclass

from spane.schemas.topics import topic_matches

TASKS_EXCHANGE = "spane.tasks"
ORCHESTRATOR_EXCHANGE = "spane.orchestrator"
ORCHESTRATOR_QUEUE = "spane.orchestrator"
TRIGGERS_EXCHANGE = "spane.triggers"
EVENTS_EXCHANGE = "spane.events"
DEAD_LETTER_EXCHANGE = "spane.dlx"
DEAD_LETTER_QUEUE = "spane.dead-letters"
CANCEL_EXCHANGE = "spane.cancellations"


def task_queue(pool: str) -> str:
    return f"{TASKS_EXCHANGE}.{pool}"


@dataclass(frozen=True, slots=True)
class Topology:
    """Every exchange and queue name of one namespace (``Settings.namespace``).

    The default namespace ``spane`` gives the names of DESIGN §4 (the module-level
    constants above); another prefix lets several installations or test runs share a
    broker without seeing each other's messages.
    """

    namespace: str = "spane"

    @property
    def tasks_exchange(self) -> str:
        """Direct exchange; routing key = pool (by default named like the task type)."""
        return f"{self.namespace}.tasks"

    def task_queue(self, pool: str) -> str:
        """Durable quorum queue of one worker pool (``function``, ``http``, a custom task
        type, or a pool a node names)."""
        return f"{self.namespace}.tasks.{pool}"

    @property
    def orchestrator_exchange(self) -> str:
        """Direct exchange of the orchestrator inbox (routing key ``""``)."""
        return f"{self.namespace}.orchestrator"

    @property
    def orchestrator_queue(self) -> str:
        """Durable quorum queue: results, heartbeats, timers, children, commands."""
        return f"{self.namespace}.orchestrator"

    @property
    def results_exchange(self) -> str:
        """Where workers publish results and heartbeats (bound to the inbox): the only
        exchange a worker may write to, and nothing but results is accepted from it."""
        return f"{self.namespace}.results"

    @property
    def triggers_exchange(self) -> str:
        """Topic exchange for trigger events (routing key = event type)."""
        return f"{self.namespace}.triggers"

    @property
    def triggers_queue(self) -> str:
        """Durable quorum queue bound to the triggers exchange with ``#``: the
        orchestrators' trigger inbox (kept apart from the command inbox because trigger
        bodies are any JSON, not SPANE messages)."""
        return f"{self.namespace}.triggers"

    @property
    def events_exchange(self) -> str:
        """Topic exchange for lifecycle events (CloudEvents)."""
        return f"{self.namespace}.events"

    @property
    def dlx(self) -> str:
        """Fanout dead-letter exchange of every SPANE queue."""
        return f"{self.namespace}.dlx"

    @property
    def dead_letter_queue(self) -> str:
        """Durable queue bound to :attr:`dlx`: poison and undecodable messages."""
        return f"{self.namespace}.dead-letters"

    @property
    def cancellations_exchange(self) -> str:
        """Fanout exchange broadcasting task cancellations to every worker."""
        return f"{self.namespace}.cancellations"

    def private_queue(self, purpose: str, token: str) -> str:
        """Name of a per-process exclusive queue (event subscription, cancellations)."""
        return f"{self.namespace}.{purpose}.{token}"


__all__ = ["Topology", "task_queue", "topic_matches"]

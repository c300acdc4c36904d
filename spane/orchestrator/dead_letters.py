"""Keeping dead letters: every orchestrator replica consumes the bus's dead letters
(RabbitMQ: ``{ns}.dead-letters``) and stores each one in the
:class:`~spane.state.base.DefinitionStore` (MongoDB in a deployment), where the API and
the CLI list, show, redrive and drop them. A batch is acknowledged only once every entry
of it is stored; a store that fails leaves the batch to be delivered again (an outage
only delays it, see :mod:`spane.bus.rabbit_consumer`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from spane.bus.base import Delivery
from spane.bus.dead_letters import DeadLetter
from spane.state.base import DefinitionStore

log = logging.getLogger("spane.orchestrator")

DEAD_LETTER_PREFETCH = 16


class DeadLetterKeeper:
    """The batch handler of the dead-letter subscription."""

    def __init__(self, definitions: DefinitionStore) -> None:
        self.definitions = definitions
        self.kept = 0
        """Entries stored by this replica."""

    async def handle(self, deliveries: Sequence[Delivery[DeadLetter]]) -> None:
        for delivery in deliveries:
            entry = delivery.message
            await self.definitions.record_dead_letter(entry.to_record())
            self.kept += 1
            log.warning(
                "kept dead letter %s from %s (message %s): %s",
                entry.id,
                entry.queue,
                entry.message_id,
                entry.reason,
            )

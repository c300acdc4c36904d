"""Embedding SPANE in a Python program: python -m examples.embedding"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import examples.writing_tasks  # noqa: F401  (registers the invoice.* tasks and `pdf`)
import spane
from spane.backends import open_backends
from spane.config import load_settings
from spane.schemas.events import LifecycleEvent

# A workflow as Python data (a YAML/JSON file path or a spane.WorkflowSpec work too).
INVOICE: dict[str, Any] = {
    "id": "invoice",
    "nodes": [
        {"id": "price", "function": "invoice.price"},
        {"id": "render", "type": "pdf", "after": ["price"], "config": {"folder": "/inv"}},
        {"id": "approve", "type": "wait_for_signal", "signal": "approval", "after": ["render"]},
        {
            "id": "send",
            "function": "invoice.send",
            "after": ["approve"],
            "input": {"to": "${ nodes.price.output.email }", "server_busy": True},
            "retry": {"max_attempts": 3},
        },
        {
            "id": "archive",
            "function": "invoice.archive",
            "after": ["send"],
            "input": {"pages": 30},  # 1.5 s of work under a 1 s timeout: it heartbeats
            "timeout": "1s",
        },
    ],
    "output": {
        "total_cents": "${ nodes.price.output.total_cents }",
        "file": "${ nodes.render.output.file }",
        "approved_by": "${ nodes.approve.output.by }",
        "sent_after_attempts": "${ nodes.send.attempt }",
        "pages_archived": "${ nodes.archive.output.pages }",
    },
}
ORDER = {"customer": "ada", "email": "ada@example.org", "amount_cents": 10_000}


async def open_engine() -> spane.Engine:
    """In memory (like spane.Engine()) unless SPANE_AMQP_URL, SPANE_REDIS_URL and
    SPANE_MONGODB_URL are set: then on RabbitMQ, Redis and MongoDB."""
    settings = load_settings()
    backends = await open_backends(settings, allow_embedded=True)
    return spane.Engine(
        settings=settings,
        bus=backends.bus,
        state=backends.state,
        definitions=backends.definitions,
    )


async def main() -> dict[str, Any]:
    asked: asyncio.Queue[str] = asyncio.Queue()

    async def on_approval_asked(routing_key: str, event: LifecycleEvent) -> None:
        await asked.put(event.subject)  # the execution id

    async with await open_engine() as engine:  # starts an orchestrator and worker pools
        await engine.register(INVOICE)  # validated; same content keeps its version
        await engine.subscribe("node.invoice.approve.started", on_approval_asked)

        # One execution, approved by a signal, then waited for.
        first = await engine.start("invoice", ORDER)
        await asked.get()  # approve is waiting for its signal
        await engine.signal(first, "approval", {"by": "grace"})
        result = await engine.wait(first, timeout=30)
        snapshot = await engine.status(first)  # .meta (the execution) and .nodes

        # Another: paused, resumed, then cancelled while it waits for approval.
        second = await engine.start("invoice", ORDER, idempotency_key="order-42")
        await asked.get()
        await engine.pause(second)
        paused = (await engine.status(second)).meta.status
        await engine.resume(second)
        await engine.cancel(second, "customer withdrew the order")
        cancelled = await engine.wait(second, timeout=30)

    return {
        "first": {"status": result.status, "output": result.output},
        "attempts": {node: state.attempt for node, state in snapshot.nodes.items()},
        "second": {"paused": paused, "finally": cancelled.status},
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))

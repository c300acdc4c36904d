"""Events of a deployment: ``spane trigger`` publishes a trigger event, ``spane events``
prints the lifecycle events as they happen.

Both talk to the deployment through the client engine of :mod:`spane.cli.ops` and need
``SPANE_AMQP_URL``, ``SPANE_REDIS_URL`` and ``SPANE_MONGODB_URL`` (exit 2 and a message
saying so otherwise). The engine is imported only when a command runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from spane.cli import ops
from spane.cli.common import EXIT_OK, parse_input, spane_errors

if TYPE_CHECKING:
    from spane.schemas.events import LifecycleEvent

__all__ = ["events", "register", "trigger"]


def trigger(
    routing_key: Annotated[str, typer.Argument(help="Event type, e.g. order.created.")],
    data_text: Annotated[
        str | None, typer.Option("--data", help="Body: JSON (or a CloudEvent), @file, @-.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Re-publishing with the same key starts nothing new.")
    ] = None,
) -> None:
    """Publish a trigger event to spane.triggers, as any AMQP producer could."""
    with spane_errors():
        data = parse_input(data_text)

    async def go() -> int:
        async with ops._client("spane trigger") as engine:
            await engine.publish_trigger(routing_key, data, idempotency_key=idempotency_key)
            typer.echo(f"published {routing_key}")
        return EXIT_OK

    ops._run(go)


def events(
    pattern: Annotated[str, typer.Argument(help="Topic pattern, e.g. 'execution.*.failed'.")] = "#",
    until_done: Annotated[
        str | None, typer.Option(help="Stop when this execution finishes.")
    ] = None,
) -> None:
    """Print lifecycle events (CloudEvents, one JSON per line) as they happen."""

    async def go() -> int:
        import asyncio

        from spane.schemas.state import TERMINAL_EXECUTION_STATUSES

        done = asyncio.Event()

        async def on_event(routing_key: str, event: LifecycleEvent) -> None:
            typer.echo(json.dumps({"routing_key": routing_key, **event.model_dump()}))
            finished = event.data.get("status") in TERMINAL_EXECUTION_STATUSES
            mine = event.subject == until_done and routing_key.startswith("execution.")
            if until_done and mine and finished:
                done.set()

        async with ops._client("spane events") as engine:
            await engine.subscribe(pattern, on_event)
            waiter = asyncio.ensure_future(done.wait())
            stopper = asyncio.ensure_future(ops._until_stopped())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stopper):
                task.cancel()
        return EXIT_OK

    ops._run(go)


def register(app: typer.Typer) -> None:
    """Add ``trigger`` and ``events`` to ``app``, in the order ``spane --help`` lists them."""
    app.command()(trigger)
    app.command()(events)

"""``spane dev``: the engine and the HTTP API in one process.

::

    spane dev --import examples.shop --workflows examples/ --port 8080

Embedded (in-memory) backends unless server URLs are configured (``SPANE_AMQP_URL``,
``SPANE_REDIS_URL``, ``SPANE_MONGODB_URL``; then all three are needed). Task modules
given with ``--import`` register their ``@spane.task`` functions; every ``.yaml``,
``.yml`` and ``.json`` file of ``--workflows DIR`` is validated before the server
starts and registered once the engine is open. The API is served by uvicorn; stop it
with Ctrl-C or SIGTERM (the engine closes with it).

Wired into the ``spane`` command by :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spane.cli.common import UsageError, import_modules, spane_errors


def dev(
    imports: Annotated[
        list[str] | None,
        typer.Option("--import", "-i", help="Module of task functions to import (repeatable)."),
    ] = None,
    workflows: Annotated[
        Path | None,
        typer.Option("--workflows", "-w", help="Register every .yaml/.yml/.json file in DIR."),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8080,
) -> None:
    """Run the engine and the HTTP API (/docs) in one process."""
    with spane_errors():
        try:
            from spane.cli import dev_server
        except ImportError as exc:
            raise UsageError(f"{exc}; install the API extras: pip install 'spane[api]'") from None
        from spane.config import load_settings

        settings = load_settings()
        import_modules(imports or [])
        specs = dev_server.load_definitions(workflows) if workflows is not None else []
        app = dev_server.make_app(settings, specs)
    typer.echo(f"SPANE API on http://{host}:{port} (docs: /docs)", err=True)
    dev_server.serve(app, host, port, settings.log_level)


def register(app: typer.Typer) -> None:
    """Add ``spane dev`` to the ``spane`` command."""
    app.command("dev")(dev)

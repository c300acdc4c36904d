"""The parts of ``spane dev`` that need the engine and the API: loading the definitions
of a folder, building the engine, the app, and serving it. Imported only when ``spane
dev`` runs (``spane --help`` stays fast)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import typer
from fastapi import FastAPI

from spane.backends import missing_urls, mongo_database
from spane.cli.common import UsageError
from spane.compiler.compile import compile_plan
from spane.config import Settings
from spane.engine import Engine
from spane.errors import ConfigurationError, InvalidWorkflowError
from spane.schemas.loader import load_workflow_file
from spane.schemas.workflow import WorkflowSpec

DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")


def load_definitions(directory: Path) -> list[WorkflowSpec]:
    """Every definition file of ``directory`` (sorted by name), each validated and
    compiled; all problems of all files are reported together."""
    if not directory.is_dir():
        raise UsageError(f"--workflows: {directory} is not a directory")
    specs: list[WorkflowSpec] = []
    problems: list[str] = []
    for path in sorted(directory.iterdir()):
        if path.suffix not in DEFINITION_SUFFIXES or not path.is_file():
            continue
        try:
            spec = load_workflow_file(str(path))
            compile_plan(spec)
        except InvalidWorkflowError as exc:
            problems.extend(f"{path}: {problem}" for problem in exc.problems)
            continue
        except OSError as exc:
            problems.append(f"{path}: {exc}")
            continue
        specs.append(spec)
    if problems:
        raise UsageError("invalid workflow definitions:\n  " + "\n  ".join(problems))
    return specs


def build_engine(settings: Settings) -> Engine:
    """An engine (not open yet: it opens on the server's event loop) on the embedded
    backends, or on the servers when their URLs are configured."""
    if settings.embedded:
        return Engine(settings=settings)
    missing = missing_urls(settings)
    if missing:
        raise ConfigurationError(
            f"distributed mode needs all three servers; set {', '.join(missing)}"
        )
    try:
        from spane.bus.rabbit import RabbitBus
        from spane.state.mongo import MongoDefinitionStore
        from spane.state.redis import RedisStateStore
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(f"{exc}; pip install 'spane[distributed]'") from None
    if not (settings.amqp_url and settings.redis_url and settings.mongodb_url):
        raise ConfigurationError("distributed mode needs all three server URLs")
    return Engine(
        settings=settings,
        bus=RabbitBus(
            settings.amqp_url,
            namespace=settings.namespace,
            connection_name="spane-dev",
            max_value_bytes=settings.max_value_bytes,
        ),
        state=RedisStateStore(
            settings.redis_url, namespace=settings.namespace, retention=settings.retention
        ),
        definitions=MongoDefinitionStore(
            settings.mongodb_url, database=mongo_database(settings.mongodb_url, settings.namespace)
        ),
    )


def make_app(settings: Settings, specs: Sequence[WorkflowSpec]) -> FastAPI:
    """The API app over a fresh engine that registers ``specs`` once open."""
    from spane.api import create_app

    async def register_all(engine: Engine) -> None:
        for spec in specs:
            record = await engine.register(spec)
            typer.echo(f"registered {record.workflow_id} v{record.version}", err=True)

    from spane.observability.tracing_setup import configure

    configure("spane-dev", namespace=settings.namespace)  # only if OTEL_* asks for it
    return create_app(build_engine(settings), on_startup=[register_all])


def serve(app: FastAPI, host: str, port: int, log_level: str) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(), lifespan="on")
    uvicorn.Server(config).run()

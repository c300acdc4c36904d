"""Looking into a deployment, as ``temporal workflow list|show`` users expect, and serving
its HTTP API.

::

    spane api [--host H] [--port P]              the REST API as a process of a deployment
    spane list [--workflow W] [--status S] [--limit N] [-o json]
    spane history ID [-o json]                   an execution's lifecycle, in time order
    spane dead-letters list [--limit N] [--cursor C] [-o json]
    spane dead-letters show ID [-o json]
    spane dead-letters redrive ID [-o json]      re-publish where it was first sent
    spane dead-letters drop ID

All need ``SPANE_AMQP_URL``, ``SPANE_REDIS_URL`` and ``SPANE_MONGODB_URL`` (exit 2 and a
message saying so otherwise). ``spane api`` runs no orchestrator and no worker: it sends
commands to the orchestrators over the bus and reads state and definitions directly,
so any number of API processes may run.

**History.** The lifecycle events themselves are kept only by the API process that saw
them (``GET /v1/executions/{id}/events``); ``spane history`` rebuilds the lifecycle from
what the state store (or, once expired there, the archive) keeps: the execution's
creation and end, and each node's start and end with its attempt count, lost attempts
and error. Times of earlier attempts of a retried node are not kept: its start is that
of its latest attempt.

The engine and the backends are imported inside the commands (``spane --help`` loads
none of them).
"""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from spane.cli import ops
from spane.cli.common import EXIT_OK, UsageError, spane_errors

if TYPE_CHECKING:
    from spane.engine import Engine, ExecutionSnapshot
    from spane.schemas.state import ExecutionMeta

__all__ = ["api", "build_history", "history", "list_command", "register"]

SCAN_LIMIT = 100_000
"""Most executions read to find ``--limit`` of one ``--status``."""


class Output(StrEnum):
    TEXT = "text"
    JSON = "json"


OutputOption = Annotated[
    Output, typer.Option("--output", "-o", help="text or json.", case_sensitive=False)
]


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------ api
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8080,
) -> None:
    """Serve the HTTP API (/docs) for a distributed deployment: stateless, any number."""
    with spane_errors():
        try:
            from spane.cli import api_server, dev_server
        except ImportError as exc:
            raise UsageError(f"{exc}; install the API extras: pip install 'spane[api]'") from None
        from spane.config import load_settings

        settings = load_settings()
        app = api_server.make_app(settings)
    typer.echo(f"SPANE API on http://{host}:{port} (docs: /docs)", err=True)
    dev_server.serve(app, host, port, settings.log_level)


# ----------------------------------------------------------------------- list
def _summary(meta: ExecutionMeta) -> dict[str, Any]:
    return {
        "id": meta.id,
        "workflow_id": meta.workflow_id,
        "version": meta.version,
        "status": str(meta.status),
        "created_at": meta.created_at,
        "finished_at": meta.finished_at,
        "parent": meta.parent.execution_id if meta.parent is not None else None,
        "error": meta.error.model_dump(mode="json", exclude={"details"})
        if meta.error is not None
        else None,
    }


async def _select(
    engine: Engine, workflow: str | None, status: str | None, limit: int
) -> list[ExecutionMeta]:
    """Up to ``limit`` executions (of ``workflow``, with ``status``), newest first."""
    scan = limit if status is None else max(4 * limit, 256)
    while True:
        metas = await engine.list_executions(workflow, limit=scan)
        chosen = [m for m in metas if status is None or m.status == status]
        if len(chosen) >= limit or len(metas) < scan or scan >= SCAN_LIMIT:
            return chosen[:limit]
        scan = min(scan * 4, SCAN_LIMIT)


def list_command(
    workflow: Annotated[str | None, typer.Option("--workflow", "-w", help="Workflow id.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", "-s", help="running, succeeded, failed, ...")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    output: OutputOption = Output.TEXT,
) -> None:
    """Executions, newest first (those the state store still holds)."""
    from spane.schemas.state import ExecutionStatus

    wanted = {s.value for s in ExecutionStatus}
    if status is not None and status.lower() not in wanted:
        raise typer.BadParameter(f"use one of {', '.join(sorted(wanted))}", param_hint="--status")

    async def go() -> int:
        async with ops._client("spane list") as engine:
            metas = await _select(engine, workflow, status.lower() if status else None, limit)
        if output is Output.JSON:
            _echo_json([_summary(meta) for meta in metas])
            return EXIT_OK
        typer.echo(f"{'EXECUTION':<34} {'WORKFLOW':<24} {'VER':>4} {'STATUS':<10} CREATED")
        for meta in metas:
            typer.echo(
                f"{meta.id:<34} {meta.workflow_id:<24} {meta.version:>4} "
                f"{meta.status:<10} {_when(meta.created_at)}"
            )
        return EXIT_OK

    ops._run(go)


# -------------------------------------------------------------------- history
def _node_events(node_id: str, snapshot: ExecutionSnapshot) -> list[dict[str, Any]]:
    from spane.schemas.state import TERMINAL_NODE_STATUSES

    state = snapshot.nodes[node_id]
    events: list[dict[str, Any]] = []
    if state.started_at is not None:
        events.append(
            {"time": state.started_at, "event": "node.started", "node": node_id,
             "attempt": state.attempt}
        )  # fmt: skip
    if state.finished_at is not None and state.status in TERMINAL_NODE_STATUSES:
        event: dict[str, Any] = {
            "time": state.finished_at,
            "event": f"node.{state.status}",
            "node": node_id,
            "attempt": state.attempt,
        }
        if state.lost:
            event["lost_attempts"] = state.lost
        if state.error is not None:
            event["error"] = state.error.model_dump(
                mode="json", exclude_none=True, exclude={"details"}
            )
        events.append(event)
    return events


def _tie_rank(event: dict[str, Any], snapshot: ExecutionSnapshot) -> int:
    """Order of events at one instant: ends of nodes started earlier (they let the next
    ones start), then starts, then ends of nodes started at that instant."""
    if event["event"] == "node.started":
        return 1
    return 2 if snapshot.nodes[event["node"]].started_at == event["time"] else 0


def build_history(snapshot: ExecutionSnapshot) -> list[dict[str, Any]]:
    """The execution's lifecycle from its stored state, oldest first: ``execution.started``,
    each node's ``node.started`` and ``node.<status>`` (with attempt, lost attempts and
    error), ``execution.<status>``; unfinished nodes appear with what they did so far."""
    meta = snapshot.meta
    first = [{"time": meta.created_at, "event": "execution.started", "status": "running"}]
    middle: list[dict[str, Any]] = []
    for node_id in snapshot.nodes:
        middle.extend(_node_events(node_id, snapshot))
    middle.sort(key=lambda e: (e["time"], _tie_rank(e, snapshot)))
    last: list[dict[str, Any]] = []
    if meta.finished_at is not None:
        end: dict[str, Any] = {
            "time": meta.finished_at,
            "event": f"execution.{meta.status}",
            "status": str(meta.status),
        }
        if meta.error is not None:
            end["error"] = meta.error.model_dump(
                mode="json", exclude_none=True, exclude={"details"}
            )
        last.append(end)
    return first + middle + last


def _history_line(event: dict[str, Any]) -> str:
    where = f" {event['node']}" if "node" in event else ""
    attempt = f" (attempt {event['attempt']})" if event.get("attempt") else ""
    error = event.get("error")
    why = f": {error.get('type')}: {error.get('message')}" if error else ""
    return f"{_when(event['time'])}  {event['event']}{where}{attempt}{why}"


def history(
    execution: Annotated[str, typer.Argument(help="Execution id.")],
    output: OutputOption = Output.TEXT,
) -> None:
    """An execution's lifecycle, oldest first: starts and ends of it and of its nodes."""

    async def go() -> int:
        async with ops._client("spane history") as engine:
            snapshot = await engine.describe(execution)
        events = build_history(snapshot)
        meta = snapshot.meta
        if output is Output.JSON:
            _echo_json(
                {
                    "execution_id": meta.id,
                    "workflow_id": meta.workflow_id,
                    "version": meta.version,
                    "status": str(meta.status),
                    "events": events,
                }
            )
            return EXIT_OK
        typer.echo(f"execution {meta.id}  {meta.workflow_id} v{meta.version}  {meta.status}")
        for event in events:
            typer.echo(f"  {_history_line(event)}")
        return EXIT_OK

    ops._run(go)


# --------------------------------------------------------------- dead letters
dead_letters = typer.Typer(
    name="dead-letters",
    help="Messages no consumer could process, kept by the orchestrators.",
    no_args_is_help=True,
)


def _dead_letter_line(entry: dict[str, Any]) -> str:
    origin = f"{entry.get('exchange')}/{entry.get('routing_key') or '-'}"
    return (
        f"{entry.get('id', '-'):<34} {_when(entry.get('dead_at'))}  {origin:<32} "
        f"{str(entry.get('reason', ''))[:80]}"
    )


def _cursor_of(entry: dict[str, Any]) -> str:
    return f"{entry.get('dead_at') or 0.0!r}:{entry.get('id') or ''}"


def _parse_cursor(text: str) -> tuple[float, str]:
    at, sep, entry_id = text.partition(":")
    try:
        if not sep:
            raise ValueError(text)
        return float(at), entry_id
    except ValueError:
        raise typer.BadParameter("expected the cursor a previous page printed") from None


@dead_letters.command("list")
def dead_letters_list(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Continue after this position (printed by a page).")
    ] = None,
    output: OutputOption = Output.TEXT,
) -> None:
    """Dead letters, newest first."""
    before = _parse_cursor(cursor) if cursor is not None else None

    async def go() -> int:
        async with ops._client("spane dead-letters") as engine:
            entries = await engine.list_dead_letters(limit + 1, before=before)
        page = entries[:limit]
        more = _cursor_of(page[-1]) if len(entries) > limit else None
        if output is Output.JSON:
            summary = [{k: v for k, v in e.items() if k not in ("body", "headers")} for e in page]
            _echo_json({"items": summary, "next_cursor": more})
            return EXIT_OK
        for entry in page:
            typer.echo(_dead_letter_line(entry))
        if more is not None:
            typer.echo(f"more: --cursor {more}", err=True)
        return EXIT_OK

    ops._run(go)


@dead_letters.command("show")
def dead_letters_show(
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="Dead letter id.")],
    output: OutputOption = Output.TEXT,
) -> None:
    """One dead letter with its body, headers and properties."""

    async def go() -> int:
        async with ops._client("spane dead-letters") as engine:
            entry = await engine.get_dead_letter(entry_id)
        if output is Output.JSON:
            _echo_json(entry)
            return EXIT_OK
        for key, value in entry.items():
            if key not in ("body", "headers"):
                typer.echo(f"{key:<17} {value}")
        typer.echo(f"{'headers':<17} {json.dumps(entry.get('headers') or {})}")
        typer.echo(f"body ({entry.get('body_encoding')}):")
        typer.echo(str(entry.get("body", "")))
        return EXIT_OK

    ops._run(go)


@dead_letters.command("redrive")
def dead_letters_redrive(
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="Dead letter id.")],
    output: OutputOption = Output.TEXT,
) -> None:
    """Re-publish a dead letter to its original exchange and routing key, then forget it."""

    async def go() -> int:
        async with ops._client("spane dead-letters") as engine:
            entry = await engine.redrive_dead_letter(entry_id)
        if output is Output.JSON:
            _echo_json(
                {"id": entry.id, "exchange": entry.exchange, "routing_key": entry.routing_key,
                 "message_id": entry.message_id}
            )  # fmt: skip
        else:
            typer.echo(f"redriven {entry.id} to {entry.exchange}/{entry.routing_key or '-'}")
        return EXIT_OK

    ops._run(go)


@dead_letters.command("drop")
def dead_letters_drop(
    entry_id: Annotated[str, typer.Argument(metavar="ID", help="Dead letter id.")],
) -> None:
    """Forget a dead letter."""

    async def go() -> int:
        async with ops._client("spane dead-letters") as engine:
            await engine.drop_dead_letter(entry_id)
        typer.echo(f"dropped {entry_id}")
        return EXIT_OK

    ops._run(go)


def register(app: typer.Typer) -> None:
    """Add ``api``, ``list``, ``history`` and ``dead-letters`` to the ``spane`` command."""
    app.command()(api)
    app.command("list")(list_command)
    app.command()(history)
    app.add_typer(dead_letters)

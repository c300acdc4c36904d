"""Operating on the executions of a deployment: ``register``, ``start``, ``status``,
``explain``, ``signal``, ``pause``, ``resume`` and ``cancel``.

Each command talks to the deployment through the client engine of :mod:`spane.cli.ops`;
all need ``SPANE_AMQP_URL``, ``SPANE_REDIS_URL`` and ``SPANE_MONGODB_URL`` (exit 2 and a
message saying so otherwise). The engine is imported only when a command runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from spane.cli import ops
from spane.cli.common import EXIT_OK, load_for_run, parse_input, spane_errors
from spane.cli.pools import pool_lines

if TYPE_CHECKING:
    from spane.core.explain import Explanation
    from spane.engine import ExecutionSnapshot

__all__ = [
    "cancel",
    "explain",
    "pause",
    "register",
    "register_command",
    "resume",
    "signal_command",
    "start",
    "status",
]


def register_command(
    files: Annotated[list[Path], typer.Argument(help="Workflow definitions.")],
) -> None:
    """Validate and store definitions (same content keeps its version)."""
    with spane_errors():
        specs = load_for_run(files)

    async def go() -> int:
        async with ops._client("spane register") as engine:
            for spec in specs:
                record = await engine.register(spec)
                typer.echo(f"{record.workflow_id} v{record.version} ({record.checksum[:12]})")
        return EXIT_OK

    ops._run(go)


def start(
    workflow: Annotated[str, typer.Argument(help="Workflow id.")],
    input_text: Annotated[
        str | None, typer.Option("--input", help="JSON, @file.json or @- (stdin).")
    ] = None,
    version: Annotated[int | None, typer.Option(help="Pin a version (default latest).")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Starting twice with one key starts once.")
    ] = None,
    priority: Annotated[int, typer.Option(min=0, max=9)] = 0,
    wait: Annotated[bool, typer.Option(help="Wait and print the output.")] = False,
    timeout: Annotated[float | None, typer.Option(help="With --wait: seconds.")] = None,
) -> None:
    """Start an execution; prints its id (or, with --wait, its output)."""
    with spane_errors():
        data = parse_input(input_text)

    async def go() -> int:
        async with ops._client("spane start") as engine:
            execution_id = await engine.start(
                workflow,
                data,
                version=version,
                idempotency_key=idempotency_key,
                priority=priority,
            )
            return await ops.report_started(engine, execution_id, wait, timeout)

    ops._run(go)


def _status_lines(snapshot: ExecutionSnapshot) -> list[str]:
    from spane.schemas.state import ExecutionStatus

    meta = snapshot.meta
    lines = [
        f"execution {meta.id}",
        f"  workflow  {meta.workflow_id} v{meta.version}",
        f"  status    {meta.status}",
    ]
    if meta.parent is not None:
        lines.append(f"  parent    {meta.parent.execution_id} (node {meta.parent.node_id})")
    if meta.error is not None:
        lines.append(f"  error     {meta.error.type}: {meta.error.message}")
    if meta.status == ExecutionStatus.SUCCEEDED:
        lines.append(f"  output    {json.dumps(meta.output)[:200]}")
    lines.append("  nodes:")
    for node_id, state in sorted(snapshot.nodes.items()):
        extra = f"  children: {', '.join(state.children)}" if state.children else ""
        if state.error is not None:
            extra += f"  {state.error.type}: {state.error.message}"
        lines.append(f"    {node_id:<24} {state.status:<10} attempt {state.attempt}{extra}")
    return lines


def status(
    execution: Annotated[
        str | None, typer.Argument(help="Execution id; none: the worker pools.")
    ] = None,
    output: Annotated[
        str, typer.Option("--output", "-o", help="text or json.", case_sensitive=False)
    ] = "text",
) -> None:
    """An execution node by node (from Redis, or the archive once it expired there); without
    an id, every pool's waiting tasks and consumers."""
    if output.lower() not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--output")
    as_json = output.lower() == "json"

    async def go() -> int:
        from spane.errors import ExecutionNotFoundError

        async with ops._client("spane status") as engine:
            if execution is None:
                stats = await engine.pool_stats()
                if as_json:
                    pools = {p: {"waiting": m, "consumers": c} for p, (m, c) in stats.items()}
                    typer.echo(json.dumps(pools, indent=2))
                else:
                    typer.echo("\n".join(pool_lines(stats)))
                return EXIT_OK
            try:
                snapshot = await engine.status(execution)
            except ExecutionNotFoundError:
                archived = await engine.definitions.get_archived(execution)
                if archived is None:
                    raise
                typer.echo(json.dumps(archived, indent=2))
                return EXIT_OK
            if as_json:
                nodes = {k: v.model_dump(mode="json") for k, v in snapshot.nodes.items()}
                typer.echo(json.dumps({**snapshot.meta.model_dump(mode="json"), "nodes": nodes}))
                return EXIT_OK
            for line in _status_lines(snapshot):
                typer.echo(line)
        return EXIT_OK

    ops._run(go)


def _explain_lines(explanation: Explanation) -> list[str]:
    lines = [
        f"execution {explanation.execution_id}",
        f"  workflow  {explanation.workflow_id} v{explanation.version}",
        f"  status    {explanation.status}",
        f"  {explanation.message}",
    ]
    for node in explanation.nodes:
        lines.append(f"  {node.node_id:<24} {node.status:<8} {node.kind:<14} {node.message}")
        lines.extend(f"  {'':<24} note: {note}" for note in node.notes)
    return lines


def explain(
    execution: Annotated[str, typer.Argument(help="Execution id.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="text or json.", case_sensitive=False)
    ] = "text",
) -> None:
    """Why is it waiting? What every unfinished node of an execution waits on."""
    if output.lower() not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--output")

    async def go() -> int:
        async with ops._client("spane explain") as engine:
            explanation = await engine.explain(execution)
        if output.lower() == "json":
            typer.echo(json.dumps(explanation.to_dict(), indent=2))
        else:
            for line in _explain_lines(explanation):
                typer.echo(line)
        return EXIT_OK

    ops._run(go)


def signal_command(
    execution: Annotated[str, typer.Argument(help="Execution id.")],
    name: Annotated[str, typer.Argument(help="Signal name.")],
    data_text: Annotated[
        str | None, typer.Option("--data", help="Payload: JSON, @file.json or @-.")
    ] = None,
) -> None:
    """Send a signal to the nodes of an execution waiting for it."""
    with spane_errors():
        data = parse_input(data_text)

    async def go() -> int:
        async with ops._client("spane signal") as engine:
            await engine.signal(execution, name, data)
            typer.echo(f"signal {name!r} delivered to {execution}")
        return EXIT_OK

    ops._run(go)


def _control(verb: str) -> Callable[[str], None]:
    def command(execution: Annotated[str, typer.Argument(help="Execution id.")]) -> None:
        async def go() -> int:
            async with ops._client(f"spane {verb}") as engine:
                await getattr(engine, verb)(execution)
                typer.echo(f"{verb}: {execution}")
            return EXIT_OK

        ops._run(go)

    command.__doc__ = f"{verb.capitalize()} an execution."
    return command


pause = _control("pause")
resume = _control("resume")
cancel = _control("cancel")


def register(app: typer.Typer) -> None:
    """Add the commands on executions to ``app``, in the order ``spane --help`` lists them."""
    app.command("register")(register_command)
    app.command()(start)
    app.command()(status)
    app.command()(explain)
    app.command("signal")(signal_command)
    for verb, command in (("pause", pause), ("resume", resume), ("cancel", cancel)):
        app.command(verb)(command)

"""Live progress of one execution for ``spane run``, fed by lifecycle events.

:class:`ExecutionProgress` folds ``node.#`` / ``execution.#`` events of one execution
(and the start/finish of its direct child executions, i.e. loop iterations and
sub-workflows) into one row per node. Two views render it:

* :class:`LiveTable` -- a rich ``Live`` table (node, type, status, attempt, duration,
  detail) for terminals;
* :class:`LineLog` -- one plain line per event, for logs and pipes::

    12:00:01.234 node validate started (attempt 1)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from spane.compiler.plan import Plan
from spane.schemas.events import LifecycleEvent

__all__ = [
    "ExecutionProgress",
    "LineLog",
    "LiveTable",
    "NodeRow",
    "ProgressView",
    "Silent",
    "format_error",
]

_STYLES = {
    "pending": "dim",
    "started": "yellow",
    "retrying": "dark_orange",
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "dim",
    "cancelled": "magenta",
    "running": "yellow",
    "paused": "cyan",
    "resumed": "yellow",
    "timed_out": "bold red",
}
_NODE_LABELS = {"started": "running"}
_TERMINAL = frozenset({"succeeded", "failed", "skipped", "cancelled"})


def format_error(error: Any) -> str:
    """``Type: message`` of an error record (a dict as carried by events), else ``str``."""
    if isinstance(error, dict):
        kind = error.get("type") or "Error"
        return f"{kind}: {error.get('message', '')}"
    return str(error)


def _event_time(event: LifecycleEvent) -> float:
    try:
        return datetime.fromisoformat(event.time).timestamp()
    except ValueError:
        return time.time()


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)} m {rest:02.0f} s"
    hours, rest = divmod(seconds, 3600)
    return f"{int(hours)} h {rest // 60:02.0f} m"


@dataclass(slots=True)
class NodeRow:
    """What is known about one node of the execution."""

    node_id: str
    type: str
    status: str = "pending"
    attempt: int = 0
    started: float | None = None
    finished: float | None = None
    detail: str = ""
    children_started: int = 0
    children_done: int = 0

    @property
    def label(self) -> str:
        return _NODE_LABELS.get(self.status, self.status)

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.finished if self.finished is not None else now) - self.started


@dataclass(slots=True)
class ExecutionProgress:
    """The state the views render: the execution's status and one row per node."""

    execution_id: str
    workflow_id: str
    rows: dict[str, NodeRow] = field(default_factory=dict)
    status: str = "pending"
    started: float | None = None
    finished: float | None = None

    @classmethod
    def for_plan(cls, plan: Plan, execution_id: str) -> ExecutionProgress:
        rows = {node_id: NodeRow(node_id, plan.nodes[node_id].type) for node_id in plan.order}
        return cls(execution_id, plan.workflow_id, rows)

    def child_node(self, event: LifecycleEvent) -> str | None:
        """The node of ours that owns a direct child execution (``<id>.<node>.<attempt>[.i]``)."""
        prefix = f"{self.execution_id}."
        if event.data.get("parent_execution_id") != self.execution_id:
            return None
        if not event.subject.startswith(prefix):
            return None
        node_id = event.subject[len(prefix) :].split(".", 1)[0]
        return node_id if node_id in self.rows else None

    def apply(self, routing_key: str, event: LifecycleEvent) -> bool:
        """Fold one event in; False when it is not about this execution (or its children)."""
        if event.subject != self.execution_id:
            return self._apply_child(routing_key, event)
        status = str(event.data.get("status", ""))
        at = _event_time(event)
        if routing_key.startswith("execution."):
            self.status = status
            if status == "started" and self.started is None:
                self.started = at
            elif status in ("succeeded", "failed", "cancelled", "timed_out"):
                self.finished = at
            return True
        row = self.rows.get(str(event.data.get("node_id")))
        if row is None:
            return False
        _apply_node(row, status, event.data, at)
        return True

    def _apply_child(self, routing_key: str, event: LifecycleEvent) -> bool:
        if not routing_key.startswith("execution."):
            return False
        node_id = self.child_node(event)
        if node_id is None:
            return False
        row = self.rows[node_id]
        status = event.data.get("status")
        if status == "started":
            row.children_started += 1
        elif status in ("succeeded", "failed", "cancelled", "timed_out"):
            row.children_done += 1
        running = row.children_started - row.children_done
        row.detail = f"{row.children_done} done, {running} running"
        return True


def _apply_node(row: NodeRow, status: str, data: dict[str, Any], at: float) -> None:
    row.status = status
    row.attempt = int(data.get("attempt") or row.attempt)
    if status == "started":
        if row.started is None:
            row.started = at
        row.finished = None  # a retry: the last attempt's error stays in `detail`
    elif status in _TERMINAL:
        row.finished = at if row.started is not None else None
    error = data.get("error")
    if error is not None and status == "retrying":
        row.detail = f"attempt {row.attempt}: {format_error(error)}"
    elif error is not None and status in ("failed", "cancelled"):
        row.detail = format_error(error)


class ProgressView(Protocol):
    """Something that shows an :class:`ExecutionProgress` while the execution runs."""

    def __enter__(self) -> ProgressView: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def update(self, routing_key: str, event: LifecycleEvent) -> None:
        """Called for every event ``progress.apply`` accepted."""
        ...

    def note(self, message: str) -> None:
        """A line from the CLI itself (``cancelling ...``)."""
        ...


class Silent:
    """``--quiet``: shows nothing."""

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def update(self, routing_key: str, event: LifecycleEvent) -> None:
        return None

    def note(self, message: str) -> None:
        return None


class LineLog:
    """One line per event on ``stream`` (stderr when stdout is not a terminal)."""

    def __init__(self, progress: ExecutionProgress, stream: TextIO) -> None:
        self.progress = progress
        self.stream = stream

    def __enter__(self) -> LineLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.stream.flush()

    def _write(self, at: float, text: str) -> None:
        stamp = datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3]
        self.stream.write(f"{stamp} {text}\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        self._write(time.time(), message)

    def update(self, routing_key: str, event: LifecycleEvent) -> None:
        if event.subject != self.progress.execution_id:
            return  # child executions are summarised in the table view only
        at = _event_time(event)
        status = str(event.data.get("status", ""))
        if routing_key.startswith("execution."):
            self._write(at, self._execution_line(status, event.data))
            return
        row = self.progress.rows.get(str(event.data.get("node_id")))
        if row is not None:
            self._write(at, _node_line(row, status, event.data))

    def _execution_line(self, status: str, data: dict[str, Any]) -> str:
        progress = self.progress
        text = f"execution {progress.workflow_id} {progress.execution_id} {status}"
        if progress.started is not None and progress.finished is not None:
            text += f" in {_duration(progress.finished - progress.started)}"
        if data.get("error") is not None:
            text += f": {format_error(data['error'])}"
        return text


def _node_line(row: NodeRow, status: str, data: dict[str, Any]) -> str:
    text = f"node {row.node_id} {status}"
    if status != "skipped":
        extras = [f"attempt {row.attempt}"]
        if status in _TERMINAL and row.started is not None and row.finished is not None:
            extras.append(_duration(row.finished - row.started))
        text += f" ({', '.join(extras)})"
    if data.get("error") is not None and status in ("retrying", "failed", "cancelled"):
        text += f": {format_error(data['error'])}"
    return text


class LiveTable:
    """A rich ``Live`` table redrawn a few times per second while events arrive."""

    def __init__(self, progress: ExecutionProgress, console: Console) -> None:
        self.progress = progress
        self.console = console
        self._live = Live(
            get_renderable=self.render,
            console=console,
            refresh_per_second=8,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> LiveTable:
        self._live.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._live.refresh()
        self._live.stop()

    def update(self, routing_key: str, event: LifecycleEvent) -> None:
        return None  # rendered from ``progress`` on the next refresh

    def note(self, message: str) -> None:
        self.console.print(Text(message, style="yellow"))

    def render(self) -> Table:
        progress = self.progress
        now = time.time()
        elapsed = ""
        if progress.started is not None:
            elapsed = " in " + _duration((progress.finished or now) - progress.started)
        title = Text.assemble(
            (progress.workflow_id, "bold"),
            f" {progress.execution_id} ",
            (progress.status, _STYLES.get(progress.status, "")),
            elapsed,
        )
        table = Table(title=title, title_justify="left", expand=False)
        table.add_column("node")
        table.add_column("type", style="dim")
        table.add_column("status")
        table.add_column("attempt", justify="right")
        table.add_column("duration", justify="right")
        table.add_column("detail", overflow="fold", max_width=60)
        for row in progress.rows.values():
            seconds = row.elapsed(now)
            table.add_row(
                row.node_id,
                row.type,
                Text(row.label, style=_STYLES.get(row.status, "")),
                str(row.attempt) if row.attempt else "",
                _duration(seconds) if seconds is not None else "",
                row.detail,
            )
        return table

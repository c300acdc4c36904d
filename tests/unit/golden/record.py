"""Golden histories of the pure decision core: record them, and replay them.

A *history* is one scripted run of the decision core (``spane.core.begin`` /
``spane.core.decide``), stored as pretty JSON in this folder (``<name>.json``):

- ``workflows``: the workflow definitions (as dicts) the history runs; the first is the
  one started, the others are sub-workflows;
- ``options``: the :class:`~spane.core.CoreOptions` fields used;
- ``steps``: every inbound message in order (the first is the ``StartExecution``), each
  with the ``now`` it was decided at (a fake clock), the exact commands the core
  produced (class name + fields, ``model_dump(mode="json")`` for pydantic values) and
  the rejection reason, if any;
- ``final``: per execution, the meta and the state of every plan node
  (``model_dump(mode="json")``).

Histories are *scripted*: each function in :data:`HISTORIES` reacts to the commands of
the previous steps (task ids the core dispatched, timers it armed, children it started,
parents it notified), playing the adapters' part by hand — including feeding a child
execution's ``NotifyParent`` back to its parent as a ``ChildFinished``. The file then
holds the concrete messages, so ``tests/unit/test_golden_histories.py`` just feeds them
in order through :func:`replay` and compares everything with the recording.

Nothing is normalised: event ids are derived from what they report and event ``time``
is ``iso_time(now)``, task ids / timer ids / child ids are derived, retry jitter is a
hash of the task id — all deterministic given the messages and ``now``. Recording runs
every script twice and refuses to write if the two runs differ, and replays every new
recording before writing it. (Liveness timers are recorded like every other command,
but the scripts never fire them: the orchestrator service, not the core, handles them.)

Re-record (only when a behaviour change is intended; review the JSON diff)::

    python -m tests.unit.golden.record                 # from the repository root
    python -m tests.unit.golden.record --out DIR       # write elsewhere
    python -m tests.unit.golden.record diamond_dag     # only some histories

To record against another checkout of ``spane`` (e.g. a frozen worktree), copy this
folder into its ``tests/unit/`` and run it from there with ``PYTHONPATH=<checkout>``,
``--out`` pointing back here; the recorder prints which ``spane`` it imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import spane
from spane.compiler.compile import compile_plan
from spane.compiler.plan import Plan
from spane.core import CoreOptions, begin, decide
from spane.schemas.commands import (
    CancelChild,
    CancelTask,
    CancelTimer,
    Command,
    DispatchTask,
    NotifyParent,
    ScheduleTimer,
    StartChild,
)
from spane.schemas.loader import spec_from_data
from spane.schemas.messages import (
    INBOX_ADAPTER,
    CancelCommand,
    InboxMessage,
    PauseCommand,
    ResumeCommand,
    SignalCommand,
    StartExecution,
    TaskFailure,
    TaskMessage,
    TaskResult,
    TimerFired,
)
from spane.schemas.state import ExecutionMeta, NodeState, Timer, TimerKind
from spane.schemas.view import ExecutionView

GOLDEN_DIR = Path(__file__).resolve().parent
START_TIME = 1_700_000_000.0
"""The fake clock's first reading (2023-11-14T22:13:20Z)."""
TICK = 1.0
"""How far the fake clock moves for each message that is not a timer firing."""

Json = Any


# --------------------------------------------------------------------- encoding
def to_json(value: Any) -> Json:
    """Plain JSON data for commands, messages and state (deterministic, no tuples)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def encode_command(command: Command) -> Json:
    return {"command": type(command).__name__, **to_json(command)}


def dumps(data: Json) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def canonical(data: Json) -> Json:
    """``data`` as it reads back from a file (what recordings are compared as)."""
    return json.loads(json.dumps(data))


# --------------------------------------------------------------------- driving
def _plan_for(plans: dict[str, Plan], start: StartExecution) -> Plan:
    """The plan a start runs: the workflow's, or the inline loop body it addresses."""
    plan = plans[start.workflow_id]
    for node_id in (start.body or "").split("/") if start.body else ():
        body = plan.nodes[node_id].body
        assert body is not None, f"{start.workflow_id}: no loop body {start.body!r}"
        plan = body
    return plan


@dataclasses.dataclass
class _Execution:
    plan: Plan
    meta: ExecutionMeta
    nodes: dict[str, NodeState]
    loops: dict[str, Any] = dataclasses.field(default_factory=dict)


class Driver:
    """Feeds messages to the core like an adapter: load a view, decide, persist, repeat.

    Several executions (parent, children, loop iterations) share one driver; each
    message goes to the execution it names. A rejected message persists nothing.
    """

    def __init__(self, workflows: list[Json], options: CoreOptions) -> None:
        self.options = options
        self.plans = {spec["id"]: compile_plan(spec_from_data(spec)) for spec in workflows}
        self.executions: dict[str, _Execution] = {}
        self.last_commands: list[Command] = []

    def step(self, message: InboxMessage, now: float) -> Json:
        if isinstance(message, StartExecution) and message.execution_id not in self.executions:
            plan = _plan_for(self.plans, message)
            view, decision = begin(plan, message, now, self.options)
        else:
            execution = self.executions[message.execution_id]
            plan = execution.plan
            view = ExecutionView(execution.meta, dict(execution.nodes), 0, execution.loops)
            decision = decide(plan, view, message, now, self.options)
        if decision.rejection is None:
            self.executions[view.meta.id] = _Execution(
                plan, view.meta, view.all_nodes(), view.all_loop_values()
            )
        self.last_commands = decision.commands
        return {
            "now": now,
            "message": message.model_dump(mode="json"),
            "commands": [encode_command(c) for c in decision.commands],
            "rejection": None if decision.rejection is None else decision.rejection.reason,
        }

    def final_state(self) -> Json:
        """Every execution's meta and the state of each of its plan's nodes."""
        out: dict[str, Json] = {}
        for execution_id, execution in sorted(self.executions.items()):
            view = ExecutionView(execution.meta, execution.nodes)
            out[execution_id] = {
                "meta": execution.meta.model_dump(mode="json"),
                "nodes": {
                    node_id: view.node(node_id).model_dump(mode="json")
                    for node_id in sorted(execution.plan.nodes)
                },
            }
        return out


def options_from(data: Json) -> CoreOptions:
    return CoreOptions(**data)


def replay(history: Json) -> Json:
    """Feed a recorded history's messages through the core; return what it produced now
    (same shape as the recording)."""
    driver = Driver(history["workflows"], options_from(history["options"]))
    steps = [
        driver.step(INBOX_ADAPTER.validate_python(step["message"]), step["now"])
        for step in history["steps"]
    ]
    return canonical({"steps": steps, "final": driver.final_state()})


# --------------------------------------------------------------------- scripting
TaskOutcome = Callable[[TaskMessage], tuple[bool, Any]]
"""A simulated worker: (ok, output) or (False, TaskFailure)."""


def succeed(task: TaskMessage) -> tuple[bool, Any]:
    return True, {"node": task.node_id, "attempt": task.attempt, "input": task.input}


class Script(Driver):
    """A :class:`Driver` with a fake clock and the adapters' bookkeeping, for recording.

    It remembers what the core asked for (tasks out with workers, armed timers, child
    starts, parent notifications, child cancellations) so scripts can answer it.
    """

    def __init__(self, workflows: list[Json], options: CoreOptions) -> None:
        super().__init__(workflows, options)
        self.workflows = workflows
        self.now = START_TIME
        self.steps: list[Json] = []
        self.tasks: deque[TaskMessage] = deque()
        self.timers: dict[str, Timer] = {}
        self.outbox: deque[InboxMessage] = deque()
        """Messages the adapters would send on their own (child starts, notifications)."""

    # ------------------------------------------------------------ sending
    def send(self, message: InboxMessage, *, at: float | None = None) -> list[Command]:
        self.now = self.now + TICK if at is None else max(self.now, at)
        record = self.step(message, self.now)
        self.steps.append(record)
        commands = self.last_commands
        for command in commands:
            self._absorb(command)
        return commands

    def _absorb(self, command: Command) -> None:
        match command:
            case DispatchTask(task=task):
                self.tasks.append(task)
            case CancelTask(task_id=task_id):
                self.tasks = deque(t for t in self.tasks if t.task_id != task_id)
            case ScheduleTimer(timer=timer) if timer.kind is not TimerKind.LIVENESS:
                self.timers[timer.id] = timer
            case CancelTimer(timer_id=timer_id):
                self.timers.pop(timer_id, None)
            case StartChild(start=start):
                self.outbox.append(start)
            case NotifyParent(message=notice):
                self.outbox.append(notice)
            case CancelChild(execution_id=child):
                self.outbox.append(CancelCommand(execution_id=child, reason="parent cancelled"))

    def start(self, workflow_id: str, input: Any = None, execution_id: str = "e1") -> None:
        self.send(StartExecution(execution_id=execution_id, workflow_id=workflow_id, input=input))

    # ------------------------------------------------------------ workers
    def task(self, node_id: str) -> TaskMessage:
        """Take the oldest outstanding task of ``node_id`` off the workers' queue."""
        for task in self.tasks:
            if task.node_id == node_id:
                self.tasks.remove(task)
                return task
        raise AssertionError(f"no task of {node_id!r} out: {[t.task_id for t in self.tasks]}")

    def complete(self, task: TaskMessage, output: Any = None) -> None:
        self.send(result(task, True, output))

    def fail(self, task: TaskMessage, failure: TaskFailure) -> None:
        self.send(result(task, False, failure))

    # ------------------------------------------------------------ timers
    def fire(self, kind: TimerKind, node_id: str | None = None) -> None:
        """Fire the armed timer of that kind (and node); the clock jumps to its time."""
        for timer in sorted(self.timers.values(), key=lambda t: t.fire_at):
            if timer.kind is kind and (node_id is None or timer.node_id == node_id):
                del self.timers[timer.id]
                self.send(TimerFired(timer=timer), at=timer.fire_at)
                return
        raise AssertionError(f"no {kind} timer for {node_id!r}: {sorted(self.timers)}")

    # ------------------------------------------------------------ running on
    def drain(self, outcome: TaskOutcome = succeed, max_steps: int = 500) -> None:
        """Run on like the adapters would: deliver child starts and notifications, then
        complete tasks in dispatch order, then fire the earliest timer, until idle."""
        for _ in range(max_steps):
            if self.outbox:
                self.send(self.outbox.popleft())
            elif self.tasks:
                task = self.tasks.popleft()
                ok, value = outcome(task)
                self.send(result(task, ok, value))
            elif self.timers:
                timer = min(self.timers.values(), key=lambda t: t.fire_at)
                del self.timers[timer.id]
                self.send(TimerFired(timer=timer), at=timer.fire_at)
            else:
                return
        raise AssertionError("history does not settle")

    def history(self, name: str, description: str) -> Json:
        return canonical(
            {
                "name": name,
                "description": description,
                "workflows": self.workflows,
                "options": dataclasses.asdict(self.options),
                "steps": self.steps,
                "final": self.final_state(),
            }
        )


def result(task: TaskMessage, ok: bool, value: Any) -> TaskResult:
    return TaskResult(
        task_id=task.task_id,
        execution_id=task.execution_id,
        node_id=task.node_id,
        attempt=task.attempt,
        ok=ok,
        output=value if ok else None,
        error=None if ok else value,
    )


def boom(kind: str = "Boom", **fields: Any) -> TaskFailure:
    return TaskFailure(type=kind, message=f"{kind} happened", **fields)


# --------------------------------------------------------------------- workflows
def fn(node_id: str, *after: str, **fields: Any) -> Json:
    return {"id": node_id, "function": f"golden.{node_id}", "after": list(after), **fields}


def node(node_id: str, type_: str, *after: str, **fields: Any) -> Json:
    return {"id": node_id, "type": type_, "after": list(after), **fields}


# --------------------------------------------------------------------- histories
def diamond_dag() -> Script:
    """a -> (b, c) -> d: a fan-out and an all-join that aggregates both branches."""
    s = Script(
        [{"id": "diamond", "nodes": [fn("a"), fn("b", "a"), fn("c", "a"), fn("d", "b", "c")]}],
        CoreOptions(),
    )
    s.start("diamond", {"n": 1})
    s.complete(s.task("a"), {"a": 1})
    s.complete(s.task("c"), {"c": 3})  # out of dispatch order
    s.complete(s.task("b"), {"b": 2})
    s.complete(s.task("d"), "done")
    return s


def switch_skip_join() -> Script:
    """A switch takes ``default``; the ``big`` branch is skipped and the skip travels
    down ``review -> audit`` until the ``ship`` join, which still has a live edge."""
    spec = {
        "id": "switch-skip",
        "nodes": [
            fn("charge"),
            node(
                "route", "switch", "charge", cases=[{"name": "big", "when": "input.total >= 1000"}]
            ),
            fn("review", "route.big"),
            fn("audit", "review"),
            fn("ship", "audit", "route.default"),
            fn("note", "audit.always"),
            fn("notify", "ship"),
        ],
    }
    s = Script([spec], CoreOptions())
    s.start("switch-skip", {"total": 50})
    s.drain()
    return s


def retry_then_catch() -> Script:
    """``charge`` fails (error result), is retried after a jittered backoff timer, times
    out (attempt timer), is retried again and fails for good: the ``.error`` port runs
    ``refund``; the success branch is skipped. A late result of the timed-out attempt
    is ignored."""
    spec = {
        "id": "retry-catch",
        "nodes": [
            fn(
                "charge",
                timeout="30s",
                retry={"max_attempts": 3, "initial_interval": "2s", "backoff": 3.0},
            ),
            fn("ship", "charge"),
            fn("refund", "charge.error", input={"why": "${ nodes.charge.error.message }"}),
            fn("notify", "refund"),
        ],
    }
    s = Script([spec], CoreOptions())
    s.start("retry-catch", {"amount": 10})
    s.fail(s.task("charge"), boom("CardDeclined"))
    s.fire(TimerKind.RETRY, "charge")
    late = s.task("charge")
    s.fire(TimerKind.ATTEMPT_TIMEOUT, "charge")
    s.fire(TimerKind.RETRY, "charge")
    s.complete(late, "too late")
    s.fail(s.task("charge"), boom("CardDeclined", details={"code": 51}))
    s.drain()
    return s


def for_each_break() -> Script:
    """for_each over 5 items, one at a time; the body's ``break`` at item 3 ends the
    loop; the iterations are child executions whose notifications are fed back."""
    spec = {
        "id": "each-break",
        "nodes": [
            node(
                "each",
                "for_each",
                items="${ input }",
                concurrency=1,
                body={
                    "nodes": [
                        fn("p", input="${ item }"),
                        node("stop", "break", "p", when="item == 3"),
                    ],
                    "output": "${ nodes.p.output }",
                },
            ),
            node("after", "noop", "each"),
        ],
    }
    s = Script([spec], CoreOptions())
    s.start("each-break", [1, 2, 3, 4, 5])
    s.drain(lambda task: (True, task.input * 10))
    return s


def while_break() -> Script:
    """A while loop whose condition always holds, ended by ``break`` at index 2."""
    spec = {
        "id": "while-break",
        "nodes": [
            node(
                "loop",
                "while",
                condition="index < 100",
                max_iterations=10,
                body={
                    "nodes": [
                        fn("tick", input="${ index }"),
                        node("stop", "break", "tick", when="index == 2"),
                    ],
                    "output": "${ nodes.tick.output }",
                },
            ),
        ],
    }
    s = Script([spec], CoreOptions())
    s.start("while-break", None)
    s.drain(lambda task: (True, {"tick": task.input}))
    return s


def sub_workflow() -> Script:
    """A parent runs a registered child workflow; the child's StartChild and its
    NotifyParent are delivered by hand, the child's output becomes the node's."""
    parent = {
        "id": "parent",
        "nodes": [
            fn("prep"),
            node("sub", "sub_workflow", "prep", workflow="child", input={"x": "${ data }"}),
            fn("finish", "sub"),
        ],
    }
    child = {"id": "child", "nodes": [fn("c1"), fn("c2", "c1")], "output": "${ nodes.c2.output }"}
    s = Script([parent, child], CoreOptions())
    s.start("parent", {"order": 7})
    s.complete(s.task("prep"), "prepared")
    s.send(s.outbox.popleft())  # StartExecution of the child
    s.complete(s.task("c1"), "c1-out")
    s.complete(s.task("c2"), {"from": "child"})
    s.send(s.outbox.popleft())  # ChildFinished to the parent
    s.complete(s.task("finish"), "finished")
    return s


def _signal_spec() -> Json:
    return {
        "id": "approval",
        "nodes": [
            fn("request"),
            node(
                "approve",
                "wait_for_signal",
                "request",
                signal="approval",
                timeout="1h",
                schema={"type": "object", "required": ["ok"]},
            ),
            fn("ship", "approve", input="${ data }"),
            fn("escalate", "approve.error"),
        ],
    }


def signal_timeout() -> Script:
    """Nobody approves: the signal timeout timer fires, the node fails and its
    ``.error`` port runs ``escalate``; a signal arriving afterwards is refused."""
    s = Script([_signal_spec()], CoreOptions())
    s.start("approval", {"id": 1})
    s.complete(s.task("request"), "requested")
    s.fire(TimerKind.SIGNAL_TIMEOUT, "approve")
    s.send(SignalCommand(execution_id="e1", name="approval", data={"ok": True}))
    s.drain()
    return s


def signal_arrives() -> Script:
    """A wrong name and a payload failing the schema are refused; the right signal
    completes the wait (its timeout timer is cancelled) and its payload flows on."""
    s = Script([_signal_spec()], CoreOptions())
    s.start("approval", {"id": 2})
    s.complete(s.task("request"), "requested")
    s.send(SignalCommand(execution_id="e1", name="approved", data={"ok": True}))
    s.send(SignalCommand(execution_id="e1", name="approval", data={"nope": 1}))
    s.send(SignalCommand(execution_id="e1", name="approval", data={"ok": True, "by": "ann"}))
    s.drain()
    return s


def cancel_mid_run() -> Script:
    """Cancel while two tasks run: both are cancelled (CancelTask), no finally branch
    runs, the execution ends ``cancelled``; a late result and a second cancel change
    nothing."""
    spec = {
        "id": "cancel",
        "nodes": [
            fn("a"),
            fn("b", "a"),
            fn("c", "a"),
            fn("d", "b", "c"),
            fn("cleanup", "b.always"),
        ],
    }
    s = Script([spec], CoreOptions())
    s.start("cancel", None)
    s.complete(s.task("a"), "a")
    running = s.task("b")
    s.send(CancelCommand(execution_id="e1", reason="operator said so"))
    s.complete(running, "late")
    s.send(CancelCommand(execution_id="e1"))
    return s


def pause_resume() -> Script:
    """Pause with a delay timer armed and a task running: the task's result is recorded
    but its successor is deferred, the timer firing is held; resume releases both."""
    spec = {
        "id": "pause",
        "nodes": [
            node("sleep", "delay", duration="30s"),
            fn("work"),
            fn("after_sleep", "sleep"),
            fn("after_work", "work"),
        ],
    }
    s = Script([spec], CoreOptions())
    s.start("pause", {"p": 1})
    s.send(PauseCommand(execution_id="e1"))
    s.complete(s.task("work"), "worked")
    s.fire(TimerKind.DELAY, "sleep")
    s.send(PauseCommand(execution_id="e1"))  # refused: already paused
    s.send(ResumeCommand(execution_id="e1"))
    s.send(ResumeCommand(execution_id="e1"))  # refused: running
    s.drain()
    return s


def unhandled_failure_finally() -> Script:
    """An unhandled failure cancels the running sibling, starts only the ``.always``
    branch (which runs to completion) and fails the execution with the first error."""
    spec = {
        "id": "failing",
        "nodes": [
            fn("a"),
            fn("b", "a"),
            fn("c", "a"),
            fn("after_c", "c"),
            fn("cleanup", "b.always"),
        ],
        "timeout": "10m",
    }
    s = Script([spec], CoreOptions(node_events=True))
    s.start("failing", None)
    s.complete(s.task("a"), "a")
    s.fail(s.task("b"), boom("Broken", non_retryable=True))
    s.drain()
    return s


HISTORIES: dict[str, Callable[[], Script]] = {
    fn_.__name__: fn_
    for fn_ in (
        diamond_dag,
        switch_skip_join,
        retry_then_catch,
        for_each_break,
        while_break,
        sub_workflow,
        signal_timeout,
        signal_arrives,
        cancel_mid_run,
        pause_resume,
        unhandled_failure_finally,
    )
}


def record(name: str) -> Json:
    """Run a history's script (twice: it must be deterministic) and check it replays."""
    script = HISTORIES[name]
    description = " ".join((script.__doc__ or "").split())
    first = script().history(name, description)
    second = script().history(name, description)
    if first != second:
        raise AssertionError(f"{name}: two recordings differ: the core is not deterministic")
    replayed = replay(first)
    if replayed != {"steps": first["steps"], "final": first["final"]}:
        raise AssertionError(f"{name}: the recording does not replay to itself")
    return first


def history_files(directory: Path = GOLDEN_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "names", nargs="*", help=f"histories to record (default all: {', '.join(HISTORIES)})"
    )
    parser.add_argument("--out", type=Path, default=GOLDEN_DIR, help="folder to write to")
    args = parser.parse_args(argv)
    print(f"recording against spane at {Path(spane.__file__).parent}", file=sys.stderr)
    for name in args.names or HISTORIES:
        history = record(name)
        path = args.out / f"{name}.json"
        path.write_text(dumps(history), encoding="utf-8")
        print(f"{path}: {len(history['steps'])} steps", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

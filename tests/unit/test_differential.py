"""Differential property: the decision core agrees with the reference interpreter.

``tests/unit/reference.py`` implements DESIGN.md §2's graph semantics independently.
Hypothesis draws random DAGs (function tasks, switches, noops; random joins, ports
including ``.error``/``.always`` and switch cases, guards, aggregates), each task's
outcome (succeeds, fails for good, fails once then succeeds on its retry), an input
and a completion order; the engine's pure core (``begin``/``decide``) and the
reference run the same case and must agree on every node's final status, the
execution's status, its first unhandled error and its output.

The engine is driven like the adapters would: a ``DispatchTask`` is answered by a
``TaskResult``, a retry is a ``RETRY`` timer fired with ``TimerFired``, and the result
of a task cancelled by an unhandled failure still arrives later (a late result).
Which pending event comes next is chosen by the same rule on both sides (see the
reference's docstring).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from spane.compiler.compile import compile_plan
from spane.core import CoreOptions, begin, decide
from spane.schemas.commands import (
    CancelTimer,
    Command,
    DispatchTask,
    ExecutionFinished,
    ScheduleTimer,
)
from spane.schemas.messages import (
    InboxMessage,
    StartExecution,
    TaskFailure,
    TaskMessage,
    TaskResult,
    TimerFired,
)
from spane.schemas.state import Timer, TimerKind
from spane.schemas.view import ExecutionView
from spane.schemas.workflow import (
    AtLeast,
    Defaults,
    FunctionNode,
    NodeSpec,
    NoopNode,
    RetryPolicy,
    SwitchCase,
    SwitchNode,
    WorkflowSpec,
)
from tests.unit.reference import (
    ALWAYS,
    DEFAULT,
    ERROR,
    MAX_ATTEMPTS,
    SUCCESS,
    TASK_ERROR,
    Cond,
    Dag,
    Event,
    Kind,
    Node,
    Outcome,
    Ref,
    Reference,
    attempt_succeeds,
    run_reference,
    task_output,
)

FLAGS = 4
MAX_EVENTS = 1_000


# ------------------------------------------------------------------ strategies
def _cond(draw: st.DrawFn) -> Cond:
    return Cond(draw(st.integers(0, FLAGS - 1)), draw(st.booleans()))


def _ports(node: Node) -> list[str]:
    if node.kind == "switch":
        return [SUCCESS, ERROR, ALWAYS, DEFAULT, *(name for name, _ in node.cases)]
    return [SUCCESS, ERROR, ALWAYS]


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 2, max_nodes: int = 12) -> Dag:
    nodes: list[Node] = []
    for index in range(draw(st.integers(min_nodes, max_nodes))):
        after: tuple[Ref, ...] = ()
        if nodes and draw(st.integers(0, 3)) > 0:  # else: another root
            refs = [Ref(node.id, port) for node in nodes for port in _ports(node)]
            refs += [Ref(node.id, ALWAYS) for node in nodes]  # more finally branches
            after = tuple(
                draw(st.lists(st.sampled_from(refs), min_size=1, max_size=4, unique=True))
            )
        join: Any = "all"
        if after:
            join = draw(st.sampled_from(["all", "any", "at_least"]))
            if join == "at_least":
                join = draw(st.integers(1, len(after)))
        kinds: list[Kind] = ["task", "task", "noop", "switch"]
        kind = draw(st.sampled_from(kinds))
        cases: tuple[tuple[str, Cond], ...] = ()
        if kind == "switch":
            cases = tuple((f"c{i}", _cond(draw)) for i in range(draw(st.integers(1, 3))))
        nodes.append(
            Node(
                id=f"n{index}",
                kind=kind,
                after=after,
                join=join,
                aggregate=draw(st.sampled_from(["map", "list", "merge", "first"])),
                when=_cond(draw) if draw(st.integers(0, 4)) == 0 else None,
                cases=cases,
                behaviour=draw(st.sampled_from(["ok", "fail", "flaky"])),
            )
        )
    return Dag(tuple(nodes))


flag_lists = st.lists(st.booleans(), min_size=FLAGS, max_size=FLAGS)
orders = st.lists(st.integers(0, 11), max_size=40)


# -------------------------------------------------------- the engine's side
def _cel(cond: Cond) -> str:
    return f"{'!' if cond.negate else ''}input.flags[{cond.flag}]"


def _spec_node(node: Node) -> NodeSpec:
    common: dict[str, Any] = {
        "id": node.id,
        "after": tuple(
            r.source if r.port == SUCCESS else f"{r.source}.{r.port}" for r in node.after
        ),
        "join": AtLeast(at_least=node.join) if isinstance(node.join, int) else node.join,
        "aggregate": node.aggregate,
        "when": _cel(node.when) if node.when is not None else None,
    }
    if node.kind == "task":
        return FunctionNode(function="test.fn", **common)
    if node.kind == "noop":
        return NoopNode(**common)
    cases = tuple(SwitchCase(name=name, when=_cel(cond)) for name, cond in node.cases)
    return SwitchNode(cases=cases, **common)


def to_spec(dag: Dag) -> WorkflowSpec:
    retry = RetryPolicy(max_attempts=MAX_ATTEMPTS, initial_interval=1, jitter=False)
    return WorkflowSpec(
        id="differential",
        defaults=Defaults(retry=retry),
        nodes=tuple(_spec_node(node) for node in dag.nodes),
    )


ERROR_FIELDS = frozenset({"type", "message", "node_id", "attempt", "details"})
FREE_TEXT = ("message", "attempt", "details")


def normalize(value: Any) -> Any:
    """Errors as ``{type, node_id}`` (the reference's form), also inside a ``merge``."""
    if isinstance(value, dict):
        error = value.keys() >= ERROR_FIELDS  # node ids never collide with these keys
        return {k: normalize(v) for k, v in value.items() if not (error and k in FREE_TEXT)}
    if isinstance(value, list):
        return [normalize(item) for item in value]
    return value


@dataclass
class Engine:
    """Drives ``begin``/``decide`` with simulated workers (no I/O, fake clock)."""

    dag: Dag
    flags: list[bool]
    now: float = 1_000.0
    view: ExecutionView | None = None
    tasks: dict[str, TaskMessage] = field(default_factory=dict)
    """Dispatched attempts whose result was not sent yet, by node."""
    retries: dict[str, Timer] = field(default_factory=dict)
    """Armed retry timers, by node."""
    finished: ExecutionFinished | None = None

    def __post_init__(self) -> None:
        self.plan = compile_plan(to_spec(self.dag))
        self.nodes = {node.id: node for node in self.dag.nodes}
        self.order = {node.id: index for index, node in enumerate(self.dag.nodes)}

    def start(self) -> None:
        start = StartExecution(
            execution_id="e1", workflow_id=self.plan.workflow_id, input={"flags": self.flags}
        )
        self.view, decision = begin(self.plan, start, self.now, CoreOptions())
        self._absorb(decision.commands)

    def send(self, message: InboxMessage) -> None:
        assert self.view is not None
        view = ExecutionView(
            self.view.meta,
            self.view.all_nodes(),
            self.view.revision,
            self.view.all_loop_values(),
        )
        decision = decide(self.plan, view, message, self.now, CoreOptions())
        assert decision.rejection is None, decision.rejection
        self.view = view
        self._absorb(decision.commands)

    def _absorb(self, commands: list[Command]) -> None:
        for command in commands:
            match command:
                case DispatchTask(task=task):
                    assert task.node_id not in self.tasks, f"{task.node_id} dispatched twice"
                    self.tasks[task.node_id] = task
                case ScheduleTimer(timer=timer) if timer.kind is TimerKind.RETRY:
                    assert timer.node_id is not None
                    self.retries[timer.node_id] = timer
                case CancelTimer(timer_id=timer_id):
                    for node_id, timer in list(self.retries.items()):
                        if timer.id == timer_id:
                            del self.retries[node_id]
                case ExecutionFinished():
                    assert self.finished is None, "finished twice"
                    self.finished = command

    def pending_events(self) -> list[Event]:
        assert self.view is not None
        events: list[Event] = []
        for node_id, task in self.tasks.items():
            state = self.view.node(node_id)
            live = str(state.status) == "running" and state.attempt == task.attempt
            events.append(Event(node_id, "result" if live else "late"))
        events += [Event(node_id, "retry") for node_id in self.retries]
        return sorted(events, key=lambda event: self.order[event.node_id])

    def handle(self, event: Event) -> None:
        if event.kind == "retry":
            timer = self.retries.pop(event.node_id)
            self.now = max(self.now, timer.fire_at)
            self.send(TimerFired(timer=timer))
            return
        task = self.tasks.pop(event.node_id)
        ok = attempt_succeeds(self.nodes[task.node_id].behaviour, task.attempt)
        self.send(
            TaskResult(
                task_id=task.task_id,
                execution_id=task.execution_id,
                node_id=task.node_id,
                attempt=task.attempt,
                ok=ok,
                output=task_output(task.node_id, normalize(task.input)) if ok else None,
                error=None if ok else TaskFailure(type=TASK_ERROR, message="boom"),
            )
        )

    def run(self, choices: list[int]) -> Outcome:
        self.start()
        picks = iter(choices)
        for _ in range(MAX_EVENTS):
            events = self.pending_events()
            if not events:
                break
            self.handle(events[next(picks, 0) % len(events)])
        assert self.view is not None
        meta = self.view.meta
        error = meta.error
        return Outcome(
            nodes={node_id: str(self.view.node(node_id).status) for node_id in self.nodes},
            status=str(meta.status),
            output=normalize(meta.output),
            error={"type": error.type, "node_id": error.node_id} if error else None,
        )


# ------------------------------------------------------------------ the property
def check(dag: Dag, flags: list[bool], choices: list[int]) -> Reference:
    reference = Reference(dag, flags)
    expected = reference.run(choices)
    actual = Engine(dag, flags).run(choices)
    assert actual.nodes == expected.nodes
    assert (actual.status, actual.error) == (expected.status, expected.error)
    assert actual.output == expected.output
    return reference


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(dag=dags(), flags=flag_lists, choices=orders)
def test_engine_agrees_with_reference(dag: Dag, flags: list[bool], choices: list[int]) -> None:
    note(f"dag={dag!r}\nflags={flags!r}\nchoices={choices!r}")
    reference = check(dag, flags, choices)
    outcome = reference.outcome()  # coverage, see --hypothesis-show-statistics
    event(f"execution {outcome.status}")
    for status in sorted(set(outcome.nodes.values())):
        event(f"some node {status}")
    for kind in sorted({handled.kind for handled in reference.handled}):
        event(f"some {kind} event")
    if reference.finally_nodes:
        event("a finally branch ran")
    if any(e.kind == "retry" and e.node_id in reference.finally_nodes for e in reference.handled):
        event("a finally task was retried")


# ------------------------------------------------------------- pinned cases
def _task(node_id: str, *after: Ref, behaviour: Any = "ok", **extra: Any) -> Node:
    return Node(node_id, "task", after=after, behaviour=behaviour, **extra)


def test_reference_if_else_rejoin() -> None:
    """A switch's two branches re-join under ``all``: the join runs on one fired edge."""
    dag = Dag(
        (
            Node("s", "switch", cases=(("yes", Cond(0)),)),
            _task("a", Ref("s", "yes")),
            _task("b", Ref("s", DEFAULT)),
            _task("j", Ref("a"), Ref("b")),
        )
    )
    outcome = run_reference(dag, [True, False, False, False], [])
    assert outcome.nodes == {"s": "succeeded", "a": "succeeded", "b": "skipped", "j": "succeeded"}
    assert outcome.status == "succeeded"
    check(dag, [True, False, False, False], [])


def test_reference_unhandled_failure_runs_only_finally() -> None:
    """``f`` fails for good: the sibling in flight is cancelled, only ``.always`` runs."""
    dag = Dag(
        (
            _task("f", behaviour="fail"),
            _task("slow"),
            _task("after_f", Ref("f")),
            _task("fin", Ref("f", ALWAYS), behaviour="flaky"),  # finally branches retry
            _task("after_fin", Ref("fin")),
            _task("after_slow", Ref("slow")),
        )
    )
    # f's first attempt fails, its retry fires, its second attempt fails; slow is last.
    outcome = run_reference(dag, [False] * FLAGS, [0, 0, 0])
    assert outcome.status == "failed"
    assert outcome.error == {"type": TASK_ERROR, "node_id": "f"}
    assert outcome.nodes == {
        "f": "failed",
        "slow": "cancelled",
        "after_f": "skipped",
        "fin": "succeeded",
        "after_fin": "succeeded",
        "after_slow": "skipped",
    }
    check(dag, [False] * FLAGS, [0, 0, 0])


def test_reference_handled_failure_and_retry() -> None:
    """A caught failure lets the execution succeed; a flaky task succeeds on its retry."""
    dag = Dag(
        (
            _task("f", behaviour="fail"),
            _task("catch", Ref("f", ERROR)),
            _task("flaky", behaviour="flaky"),
        )
    )
    outcome = run_reference(dag, [False] * FLAGS, [])
    assert outcome.status == "succeeded"
    assert outcome.nodes == {"f": "failed", "catch": "succeeded", "flaky": "succeeded"}
    error = {"type": TASK_ERROR, "node_id": "f"}
    assert outcome.output == {
        "catch": task_output("catch", error),
        "flaky": outcome.output["flaky"],
    }
    check(dag, [False] * FLAGS, [])


def test_reference_at_least_skips_when_impossible() -> None:
    """``{at_least: 2}`` is skipped once too few of its edges can still fire."""
    dag = Dag(
        (
            _task("a", behaviour="fail"),
            _task("b", Ref("a", ERROR)),
            Node("c", "noop", after=(Ref("a"), Ref("b")), join=2),
        )
    )
    outcome = run_reference(dag, [False] * FLAGS, [])
    assert outcome.nodes == {"a": "failed", "b": "succeeded", "c": "skipped"}
    check(dag, [False] * FLAGS, [])

"""Graph-level validation of a workflow definition (DESIGN §2, "Validation"). Pure.

:func:`validate` walks a :class:`~spane.schemas.workflow.WorkflowSpec` and returns
**every** problem it finds, each with a location in the same style as the loader
(``nodes[3].after[1]``, ``nodes[2].when``, ``nodes[4].body.nodes[0].after[0]``,
``triggers[0].filter``, ``output``) and, where one helps, a hint (``did you mean
'charge'?``). Structural problems (types, unknown fields) were already reported by
pydantic; this module checks what needs the whole graph:

- node ids, ``after`` references and their ports, duplicates, self references;
- cycles (naming the nodes) and nodes that can never run;
- join thresholds, switch case names, ``break``/``continue`` placement;
- expressions: syntax, root names, ``nodes.<id>`` and ``vars.<name>`` references,
  loop-only / trigger-only names and where ``secrets`` may appear
  (see :mod:`spane.expressions.cel`).

The graph helpers (:func:`split_ref`, :func:`node_ports`, :func:`templated_fields`,
:func:`topological_order`) are shared with :mod:`spane.compiler.compile`.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spane.compiler.plan import PORT_ALWAYS, PORT_DEFAULT, PORT_ERROR, PORT_SUCCESS
from spane.errors import ExpressionSyntaxError, Problem
from spane.expressions.cel import (
    KNOWN_ROOTS,
    Expression,
    compile_expression,
    compile_template,
)
from spane.schemas.workflow import (
    CONTROL_TYPES,
    LOOP_TYPES,
    TASK_TYPES_BUILTIN,
    AtLeast,
    CustomNode,
    DelayNode,
    EventTrigger,
    FailNode,
    ForEachNode,
    HttpNode,
    NodeSpec,
    RepeatNode,
    SetNode,
    SwitchNode,
    TransformNode,
    WhileNode,
    WorkflowSpec,
)

BASE_PORTS = (PORT_SUCCESS, PORT_ERROR, PORT_ALWAYS)
"""Ports every node has."""
RESERVED_CASE_NAMES = frozenset({PORT_SUCCESS, PORT_ERROR, PORT_ALWAYS, PORT_DEFAULT})
LOOP_ROOTS = frozenset({"item", "index", "iteration"})
"""Names only a loop body's expressions see."""
_BODY_ONLY_TYPES = frozenset({"break", "continue"})
_WORKER_FIELDS = frozenset({"input", "request", "expect", "config"})
"""Task-node fields rendered on the worker, the only place ``secrets`` resolve."""


# --------------------------------------------------------------------------- helpers


def split_ref(entry: str) -> tuple[str, str]:
    """``'charge'`` -> ``('charge', 'success')``; ``'charge.error'`` -> ``('charge', 'error')``."""
    node_id, dot, port = entry.partition(".")
    return node_id, port if dot else PORT_SUCCESS


def node_ports(node: NodeSpec) -> tuple[str, ...]:
    """The ports ``node`` can fire, in display order."""
    if isinstance(node, SwitchNode):
        return (*BASE_PORTS, PORT_DEFAULT, *(case.name for case in node.cases))
    return BASE_PORTS


def is_task(node: NodeSpec) -> bool:
    """Function, http and custom nodes run on worker pools; the rest are control nodes."""
    return node.type in TASK_TYPES_BUILTIN or node.type not in CONTROL_TYPES


def templated_fields(node: NodeSpec) -> list[tuple[str, Any]]:
    """The node's ``${ }``-templated fields other than ``input``, by name."""
    fields: list[tuple[str, Any]] = []
    if isinstance(node, HttpNode):
        fields.append(("request", node.request.model_dump(by_alias=True, exclude_none=True)))
        fields.append(("expect", node.expect.model_dump(by_alias=True, exclude_none=True)))
    elif isinstance(node, CustomNode):
        fields.append(("config", node.config))
    elif isinstance(node, TransformNode):
        fields.append(("output", node.output))
    elif isinstance(node, SetNode):
        fields.append(("vars", node.vars))
    elif isinstance(node, FailNode):
        fields.append(("error", node.error))
    elif isinstance(node, ForEachNode):
        fields.append(("items", node.items))
    elif isinstance(node, DelayNode) and node.until is not None:
        fields.append(("until", node.until))
    elif isinstance(node, RepeatNode) and isinstance(node.times, str):
        fields.append(("times", node.times))
    return fields


def topological_order(count: int, edges: Iterable[tuple[int, int]]) -> tuple[list[int], set[int]]:
    """Kahn's algorithm over node indices, ready nodes taken in index order.

    Returns the order and the indices that could not be ordered (on or behind a cycle).
    """
    successors: list[set[int]] = [set() for _ in range(count)]
    indegree = [0] * count
    for source, target in edges:
        if target not in successors[source]:
            successors[source].add(target)
            indegree[target] += 1
    ready = [index for index in range(count) if indegree[index] == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for target in successors[index]:
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, target)
    return order, set(range(count)) - set(order)


def _did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1)
    return f"did you mean {matches[0]!r}?" if matches else None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _walk_strings(value: Any, location: str) -> Iterator[tuple[str, str]]:
    """Every string leaf of a JSON-like value with its location."""
    if isinstance(value, str):
        yield location, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_strings(item, f"{location}.{key}")
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            yield from _walk_strings(item, f"{location}[{position}]")


# --------------------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class _Scope:
    """What expressions of one graph (the workflow or a loop body) may refer to."""

    prefix: str
    """Location prefix: ``''`` or ``'nodes[4].body.'``."""
    node_ids: frozenset[str]
    variables: frozenset[str]
    in_body: bool


@dataclass(frozen=True, slots=True)
class _Site:
    """Where an expression is evaluated, which decides the names it may use."""

    what: str
    """For messages: ``a guard``, ``a trigger's filter``, ``the workflow output``..."""
    loop_roots: frozenset[str] = frozenset()
    trigger: bool = False
    secrets: bool = False
    condition: bool = False


def _root_problem(root: str, roots: frozenset[str], site: _Site, loc: str) -> Problem | None:
    if root not in KNOWN_ROOTS:
        allowed = (KNOWN_ROOTS - LOOP_ROOTS - {"event", "secrets"}) | site.loop_roots
        if site.secrets:
            allowed |= {"secrets"}
        if site.trigger:
            allowed = frozenset({"event"})
        return Problem(loc, f"unknown name {root!r}", _did_you_mean(root, allowed))
    if root in LOOP_ROOTS and root not in site.loop_roots:
        return Problem(loc, f"{root!r} is only available inside a loop body")
    if site.trigger and root != "event":
        return Problem(loc, f"{root!r} is not available in {site.what}", "use 'event'")
    if root == "event" and not site.trigger:
        return Problem(loc, "'event' is only available in a trigger's filter and input")
    if root == "secrets":
        return _secrets_problem(roots, site, loc)
    return None


def _secrets_problem(roots: frozenset[str], site: _Site, loc: str) -> Problem | None:
    if site.condition:
        return Problem(
            loc,
            f"'secrets' cannot be used in {site.what}",
            "secrets are resolved on the worker; the orchestrator never sees them",
        )
    if not site.secrets:
        return Problem(
            loc,
            f"'secrets' cannot be used in {site.what}: it is evaluated by the orchestrator",
            "secrets are resolved on the worker, only in task nodes' input/request/config",
        )
    if len(roots) > 1:
        return Problem(
            loc,
            "'secrets' must be used alone in an expression",
            "write it as its own part, e.g. '${ secrets.TOKEN }'",
        )
    return None


def _reference_problems(expr: Expression, site: _Site, scope: _Scope, loc: str) -> list[Problem]:
    problems = [
        problem
        for root in sorted(expr.roots)
        if (problem := _root_problem(root, expr.roots, site, loc)) is not None
    ]
    for node_id in sorted(expr.node_refs - scope.node_ids):
        hint = _did_you_mean(node_id, scope.node_ids)
        if hint is None and scope.in_body:
            hint = "a loop body can only refer to its own nodes"
        problems.append(Problem(loc, f"unknown node {node_id!r} in 'nodes.{node_id}'", hint))
    for name in sorted(expr.var_refs - scope.variables):
        hint = _did_you_mean(name, scope.variables) or (
            "define it in the workflow's 'vars:' or with a 'set' node"
        )
        problems.append(Problem(loc, f"variable {name!r} is never defined", hint))
    return problems


def _check_expression(source: str, loc: str, site: _Site, scope: _Scope) -> list[Problem]:
    try:
        expr = compile_expression(source)
    except ExpressionSyntaxError as exc:
        return [Problem(loc, f"syntax error: {exc}")]
    return _reference_problems(expr, site, scope, loc)


def _check_template(value: Any, loc: str, site: _Site, scope: _Scope) -> list[Problem]:
    problems: list[Problem] = []
    for where, text in _walk_strings(value, loc):
        try:
            template = compile_template(text)
        except ExpressionSyntaxError as exc:
            problems.append(Problem(where, f"syntax error: {exc}"))
            continue
        for expr in template.expressions:
            problems.extend(_reference_problems(expr, site, scope, where))
    return problems


# --------------------------------------------------------------------------- one node


def _node_site(node: NodeSpec, name: str, scope: _Scope) -> _Site:
    loop_roots = LOOP_ROOTS if scope.in_body else frozenset[str]()
    secrets = is_task(node) and name in _WORKER_FIELDS
    what = f"a {node.type} node's {name!r}"
    return _Site(what, loop_roots=loop_roots, secrets=secrets)


def _condition_site(what: str, scope: _Scope, extra: frozenset[str] = frozenset()) -> _Site:
    loop_roots = (LOOP_ROOTS if scope.in_body else frozenset[str]()) | extra
    return _Site(what, loop_roots=loop_roots, condition=True)


def _node_expressions(node: NodeSpec, loc: str, scope: _Scope) -> list[Problem]:
    problems: list[Problem] = []
    if node.when is not None:
        site = _condition_site("a 'when' guard", scope)
        problems += _check_expression(node.when, f"{loc}.when", site, scope)
    if isinstance(node, SwitchNode):
        site = _condition_site("a switch case", scope)
        for position, case in enumerate(node.cases):
            problems += _check_expression(case.when, f"{loc}.cases[{position}].when", site, scope)
    if isinstance(node, WhileNode):
        site = _condition_site("a loop condition", scope, frozenset({"iteration", "index"}))
        problems += _check_expression(node.condition, f"{loc}.condition", site, scope)
    if node.input is not None:
        site = _node_site(node, "input", scope)
        problems += _check_template(node.input, f"{loc}.input", site, scope)
    for name, value in templated_fields(node):
        site = _node_site(node, name, scope)
        problems += _check_template(value, f"{loc}.{name}", site, scope)
    return problems


def _switch_problems(node: SwitchNode, loc: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for position, case in enumerate(node.cases):
        where = f"{loc}.cases[{position}].name"
        if case.name in RESERVED_CASE_NAMES:
            problems.append(
                Problem(
                    where,
                    f"case name {case.name!r} is reserved for a port",
                    "reserved: " + ", ".join(sorted(RESERVED_CASE_NAMES)),
                )
            )
        elif case.name in seen:
            problems.append(Problem(where, f"duplicate case name {case.name!r}"))
        seen.add(case.name)
    return problems


def _join_problem(node: NodeSpec, loc: str) -> Problem | None:
    if isinstance(node.join, AtLeast) and node.join.at_least > len(node.after):
        edges, needed = len(node.after), node.join.at_least
        return Problem(
            f"{loc}.join",
            f"join needs at_least {_count(needed, 'fired edge')} "
            f"but the node has only {_count(edges, 'upstream edge')}",
            f"use a number between 1 and {edges}" if edges else "remove the join",
        )
    return None


# --------------------------------------------------------------------------- one graph


@dataclass(slots=True)
class _Graph:
    """A graph (the workflow or a body) as indices; only valid edges are kept."""

    nodes: Sequence[NodeSpec]
    scope: _Scope
    first: dict[str, int] = field(default_factory=dict)
    edges: list[tuple[int, str, int, int]] = field(default_factory=list)
    """(source, port, target, position in the target's ``after``)."""
    problems: list[Problem] = field(default_factory=list)

    def loc(self, index: int) -> str:
        return f"{self.scope.prefix}nodes[{index}]"


def _index_ids(graph: _Graph) -> None:
    for index, node in enumerate(graph.nodes):
        if node.id in graph.first:
            first = graph.loc(graph.first[node.id])
            message = f"duplicate node id {node.id!r}"
            graph.problems.append(Problem(f"{graph.loc(index)}.id", message, f"first at {first}"))
        else:
            graph.first[node.id] = index


def _after_problem(graph: _Graph, index: int, entry: str) -> Problem | None:
    node = graph.nodes[index]
    source_id, port = split_ref(entry)
    if source_id == node.id:
        return Problem("", f"node {node.id!r} cannot run after itself")
    if source_id not in graph.first:
        hint = _did_you_mean(source_id, graph.first)
        return Problem("", f"unknown node {source_id!r}", hint)
    ports = node_ports(graph.nodes[graph.first[source_id]])
    if port not in ports:
        close = difflib.get_close_matches(port, ports, n=1)
        listing = f"ports of {source_id!r}: {', '.join(ports)}"
        hint = f"did you mean '{source_id}.{close[0]}'? {listing}" if close else listing
        return Problem("", f"unknown port {port!r} of node {source_id!r}", hint)
    return None


def _check_after(graph: _Graph, index: int) -> None:
    node = graph.nodes[index]
    seen: dict[tuple[str, str], int] = {}
    for position, entry in enumerate(node.after):
        loc = f"{graph.loc(index)}.after[{position}]"
        problem = _after_problem(graph, index, entry)
        if problem is not None:
            graph.problems.append(Problem(loc, problem.message, problem.hint))
            continue
        key = split_ref(entry)
        if key in seen:
            graph.problems.append(
                Problem(
                    loc,
                    f"upstream port '{key[0]}.{key[1]}' is listed twice",
                    f"also at after[{seen[key]}]",
                )
            )
            continue
        seen[key] = position
        graph.edges.append((graph.first[key[0]], key[1], index, position))


def _check_node(graph: _Graph, index: int) -> None:
    node = graph.nodes[index]
    loc = graph.loc(index)
    _check_after(graph, index)
    join = _join_problem(node, loc)
    if join is not None:
        graph.problems.append(join)
    if isinstance(node, SwitchNode):
        graph.problems.extend(_switch_problems(node, loc))
    if node.type in _BODY_ONLY_TYPES and not graph.scope.in_body:
        graph.problems.append(
            Problem(f"{loc}.type", f"{node.type!r} is only valid inside a loop body")
        )
    graph.problems.extend(_node_expressions(node, loc, graph.scope))
    if node.type in LOOP_TYPES:
        body = getattr(node, "body", None)
        if body is not None:
            variables = graph.scope.variables
            graph.problems.extend(
                _validate_graph(body.nodes, body.output, f"{loc}.body.", variables)
            )


def _find_cycle(start: int, members: set[int], successors: list[list[int]]) -> list[int]:
    """Shortest cycle through ``start`` inside ``members`` (breadth-first)."""
    parent: dict[int, int] = {}
    frontier = [start]
    while frontier:
        following: list[int] = []
        for current in frontier:
            for target in successors[current]:
                if target == start:
                    path = [current]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [*reversed(path), start]
                if target in members and target not in parent:
                    parent[target] = current
                    following.append(target)
        frontier = following
    return [start]


def _reaches(start: int, successors: list[list[int]]) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        for target in successors[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _cycle_problems(graph: _Graph, blocked: set[int]) -> None:
    successors: list[list[int]] = [[] for _ in graph.nodes]
    for source, _port, target, _position in graph.edges:
        successors[source].append(target)
    reach = {index: _reaches(index, successors) for index in blocked}
    reported: set[int] = set()
    for index in sorted(blocked):
        members = {other for other in blocked if index in reach[other] and other in reach[index]}
        if index in reported or len(members) < 2:
            continue
        reported |= members
        cycle = _find_cycle(index, members, successors)
        names = " -> ".join(graph.nodes[member].id for member in cycle)
        previous = cycle[-2]
        position = next(
            pos for src, _p, tgt, pos in graph.edges if src == previous and tgt == index
        )
        graph.problems.append(
            Problem(
                f"{graph.loc(index)}.after[{position}]",
                f"cycle: {names}",
                "repeat work with a while/repeat/for_each loop node instead",
            )
        )


def _edge_can_fire(graph: _Graph, live: list[bool], source: int, port: str) -> bool:
    if port == PORT_ALWAYS:
        return True  # fires even when the source is skipped
    if not live[source]:
        return False
    return not (isinstance(graph.nodes[source], FailNode) and port == PORT_SUCCESS)


def _dead_reason(graph: _Graph, incoming: list[tuple[int, str]], fired: int) -> Problem:
    fails = [
        graph.nodes[source].id
        for source, port in incoming
        if isinstance(graph.nodes[source], FailNode) and port == PORT_SUCCESS
    ]
    if fired:
        return Problem("", f"can never run: only {fired} of its upstream edges can fire")
    if fails:
        return Problem(
            "",
            f"can never run: {fails[0]!r} is a fail node, its success port never fires",
            f"use '{fails[0]}.error' or '{fails[0]}.always'",
        )
    sources = ", ".join(repr(graph.nodes[source].id) for source, _port in incoming)
    return Problem("", f"can never run: every upstream node ({sources}) can never run")


def _reachability_problems(graph: _Graph, order: list[int]) -> None:
    incoming: list[list[tuple[int, str]]] = [[] for _ in graph.nodes]
    for source, port, target, _position in graph.edges:
        incoming[target].append((source, port))
    live = [True] * len(graph.nodes)
    for index in order:
        edges = incoming[index]
        node = graph.nodes[index]
        if not edges or len(edges) != len(node.after):
            continue  # a root, or an invalid reference reported already
        needed = node.join.at_least if isinstance(node.join, AtLeast) else 1
        fired = sum(_edge_can_fire(graph, live, source, port) for source, port in edges)
        if fired >= needed or (needed > len(node.after)):
            continue  # a bad threshold is reported by the join check
        live[index] = False
        reason = _dead_reason(graph, edges, fired)
        graph.problems.append(
            Problem(f"{graph.loc(index)}.after", f"node {node.id!r} {reason.message}", reason.hint)
        )


def _validate_graph(
    nodes: Sequence[NodeSpec], output: Any, prefix: str, variables: frozenset[str]
) -> list[Problem]:
    in_body = bool(prefix)
    scope = _Scope(prefix, frozenset(node.id for node in nodes), variables, in_body)
    graph = _Graph(nodes, scope)
    _index_ids(graph)
    for index in range(len(nodes)):
        _check_node(graph, index)
    order, blocked = topological_order(
        len(nodes), ((source, target) for source, _port, target, _pos in graph.edges)
    )
    if blocked:
        _cycle_problems(graph, blocked)
    else:
        _reachability_problems(graph, order)
    if output is not None:
        what = "a loop body's output" if in_body else "the workflow output"
        site = _Site(what, loop_roots=LOOP_ROOTS if in_body else frozenset())
        graph.problems.extend(_check_template(output, f"{prefix}output", site, scope))
    return graph.problems


# --------------------------------------------------------------------------- workflow


def defined_variables(spec: WorkflowSpec) -> frozenset[str]:
    """Names in the workflow's ``vars:`` and set by any ``set`` node, bodies included."""
    names = set(spec.vars)
    pending: list[Sequence[NodeSpec]] = [spec.nodes]
    while pending:
        for node in pending.pop():
            if isinstance(node, SetNode):
                names.update(node.vars)
            body = getattr(node, "body", None)
            if node.type in LOOP_TYPES and body is not None:
                pending.append(body.nodes)
    return frozenset(names)


def _trigger_problems(spec: WorkflowSpec, scope: _Scope) -> list[Problem]:
    problems: list[Problem] = []
    for position, trigger in enumerate(spec.triggers):
        loc = f"triggers[{position}]"
        if isinstance(trigger, EventTrigger) and trigger.filter is not None:
            site = _Site("a trigger's filter", trigger=True, condition=True)
            problems += _check_expression(trigger.filter, f"{loc}.filter", site, scope)
        if trigger.input is not None:
            site = _Site("a trigger's input", trigger=True)
            problems += _check_template(trigger.input, f"{loc}.input", site, scope)
    return problems


def validate(spec: WorkflowSpec) -> list[Problem]:
    """Every graph-level problem of ``spec``; an empty list means it compiles."""
    variables = defined_variables(spec)
    problems = _validate_graph(spec.nodes, spec.output, "", variables)
    scope = _Scope("", frozenset(node.id for node in spec.nodes), variables, in_body=False)
    problems += _trigger_problems(spec, scope)
    return problems

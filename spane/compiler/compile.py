"""The graph compiler: a validated :class:`WorkflowSpec` becomes an immutable :class:`Plan`.

Pure (DESIGN §3): no clock, no ids, no I/O. :func:`compile_plan` first runs
:func:`~spane.compiler.validation.validate` and raises
:class:`~spane.errors.InvalidWorkflowError` listing every problem; otherwise it
compiles every expression and template once and precomputes what the decision core
needs per node (edges by port, join, effective timeout and retry policy, the nodes its
expressions read) and per plan (topological order, roots, leaves, branch and
convergence points, parallel groups, a bounded list of paths, the checksum).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from spane.compiler.graph import is_task, split_ref, templated_fields, topological_order
from spane.compiler.plan import (
    MAX_PATHS,
    PORT_ERROR,
    CompiledCase,
    Edge,
    JoinMode,
    NodeKind,
    Plan,
    PlanNode,
    RetrySettings,
)
from spane.compiler.validation import validate
from spane.errors import InvalidWorkflowError
from spane.expressions import Expression, compile_expression, compile_template
from spane.schemas.pools import node_pool
from spane.schemas.workflow import (
    LOOP_TYPES,
    AtLeast,
    Defaults,
    InlineBody,
    NodeSpec,
    RetryPolicy,
    SwitchNode,
    WhileNode,
    WorkflowSpec,
)

__all__ = ["checksum", "compile_plan", "effective_retry", "effective_timeout"]

_BUILTIN_RETRY = RetrySettings()
_TIMEOUT_TYPES = frozenset({"sub_workflow"})
"""Control types that inherit ``defaults.timeout`` (task nodes always do)."""


def checksum(spec: WorkflowSpec) -> str:
    """sha256 (hex) of the spec's canonical JSON: same content, same checksum."""
    document = spec.model_dump(mode="json", by_alias=True)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def compile_plan(spec: WorkflowSpec, version: int = 1) -> Plan:
    """Validate ``spec`` and compile it into the plan the decision core runs.

    Raises :class:`~spane.errors.InvalidWorkflowError` with every problem found.
    """
    problems = validate(spec)
    if problems:
        raise InvalidWorkflowError(problems, spec.id)
    return _build_plan(spec, version)


# --------------------------------------------------------------------------- policies


def effective_retry(node: NodeSpec, defaults: Defaults) -> RetrySettings:
    """Field by field: the node's retry, else ``defaults.retry``, else the built-in.

    Control nodes do not retry (``max_attempts=1``), except ``sub_workflow``.
    """
    own: RetryPolicy | None = getattr(node, "retry", None)
    if not is_task(node) and node.type != "sub_workflow":
        return _BUILTIN_RETRY
    layers = [policy for policy in (own, defaults.retry) if policy is not None]

    def pick(name: str) -> Any:
        for policy in layers:
            value = getattr(policy, name)
            if value is not None:
                return value
        return getattr(_BUILTIN_RETRY, name)

    return RetrySettings(
        max_attempts=pick("max_attempts"),
        initial_interval=pick("initial_interval"),
        backoff=pick("backoff"),
        max_interval=pick("max_interval"),
        jitter=pick("jitter"),
        non_retryable=frozenset(pick("non_retryable")),
    )


def effective_timeout(node: NodeSpec, defaults: Defaults) -> float | None:
    """The node's own timeout, else ``defaults.timeout`` for task and sub_workflow nodes.

    ``wait_for_signal`` uses only its own; other control nodes have none.
    """
    own: float | None = getattr(node, "timeout", None)
    if own is not None:
        return own
    if is_task(node) or node.type in _TIMEOUT_TYPES:
        return defaults.timeout
    return None


# --------------------------------------------------------------------------- nodes


def _join(node: NodeSpec) -> tuple[JoinMode, int]:
    if isinstance(node.join, AtLeast):
        return JoinMode.AT_LEAST, node.join.at_least
    return JoinMode(node.join), 1


def _refs(expressions: Iterable[Expression]) -> frozenset[str]:
    refs: set[str] = set()
    for expr in expressions:
        refs |= expr.node_refs
    return frozenset(refs)


def _body_plan(node: NodeSpec, parent: WorkflowSpec, version: int) -> Plan | None:
    body: InlineBody | None = getattr(node, "body", None)
    if node.type not in LOOP_TYPES or body is None:
        return None
    spec = WorkflowSpec.model_construct(
        id=f"{parent.id}.{node.id}",
        nodes=body.nodes,
        output=body.output,
        defaults=parent.defaults,
    )
    return _build_plan(spec, version)


def _plan_node(
    node: NodeSpec,
    edges: tuple[tuple[Edge, ...], tuple[Edge, ...]],
    level: int,
    spec: WorkflowSpec,
    version: int,
) -> PlanNode:
    join, threshold = _join(node)
    guard = compile_expression(node.when) if node.when is not None else None
    condition = compile_expression(node.condition) if isinstance(node, WhileNode) else None
    cases = tuple(
        CompiledCase(case.name, compile_expression(case.when))
        for case in (node.cases if isinstance(node, SwitchNode) else ())
    )
    given = compile_template(node.input) if node.input is not None else None
    templates = {name: compile_template(value) for name, value in templated_fields(node)}
    expressions = [expr for expr in (guard, condition) if expr is not None]
    expressions += [case.condition for case in cases]
    for template in (given, *templates.values()):
        expressions += template.expressions if template is not None else ()
    return PlanNode(
        id=node.id,
        type=node.type,
        kind=NodeKind.TASK if is_task(node) else NodeKind.CONTROL,
        spec=node,
        parents=edges[0],
        children=edges[1],
        join=join,
        threshold=threshold,
        aggregate=node.aggregate,
        guard=guard,
        input=given,
        templates=templates,
        cases=cases,
        condition=condition,
        timeout=effective_timeout(node, spec.defaults),
        retry=effective_retry(node, spec.defaults),
        priority=getattr(node, "priority", None) or 0,
        node_refs=_refs(expressions),
        level=level,
        body=_body_plan(node, spec, version),
        pool=node_pool(node, spec.defaults),
    )


# --------------------------------------------------------------------------- graph


def _edges(nodes: Sequence[NodeSpec]) -> dict[str, list[Edge]]:
    """Incoming edges per node, in ``after`` order."""
    return {
        node.id: [Edge(*split_ref(entry), target=node.id) for entry in node.after] for node in nodes
    }


def _levels(order: Sequence[str], parents: Mapping[str, list[Edge]]) -> dict[str, int]:
    """Longest distance from a root, in edges."""
    levels: dict[str, int] = {}
    for node_id in order:
        levels[node_id] = max((levels[edge.source] + 1 for edge in parents[node_id]), default=0)
    return levels


def _paths(
    roots: Sequence[str], successors: Mapping[str, Sequence[str]]
) -> tuple[tuple[tuple[str, ...], ...], bool]:
    """Root-to-leaf paths, depth first, at most ``MAX_PATHS`` (then capped)."""
    paths: list[tuple[str, ...]] = []
    stack: list[tuple[str, ...]] = [(root,) for root in reversed(roots)]
    while stack:
        path = stack.pop()
        following = successors[path[-1]]
        if not following:
            if len(paths) == MAX_PATHS:
                return tuple(paths), True
            paths.append(path)
            continue
        stack.extend((*path, child) for child in reversed(following))
    return tuple(paths), False


def _successors(ids: Sequence[str], children: Mapping[str, list[Edge]]) -> dict[str, list[str]]:
    """Distinct child nodes per node, in edge order."""
    return {node_id: list(dict.fromkeys(e.target for e in children[node_id])) for node_id in ids}


def _groups(ids: Sequence[str], levels: Mapping[str, int]) -> tuple[tuple[str, ...], ...]:
    """Nodes by level (parallel execution groups), each in definition order."""
    groups: list[list[str]] = [[] for _ in range(max(levels.values(), default=-1) + 1)]
    for node_id in ids:
        groups[levels[node_id]].append(node_id)
    return tuple(tuple(group) for group in groups)


def _build_plan(spec: WorkflowSpec, version: int) -> Plan:
    ids = [node.id for node in spec.nodes]
    position = {node_id: index for index, node_id in enumerate(ids)}
    parents = _edges(spec.nodes)
    children: dict[str, list[Edge]] = {node_id: [] for node_id in ids}
    for node_id in ids:
        for edge in parents[node_id]:
            children[edge.source].append(edge)
    index_order, _ = topological_order(
        len(ids), ((position[e.source], position[e.target]) for es in parents.values() for e in es)
    )
    order = tuple(ids[index] for index in index_order)
    levels = _levels(order, parents)
    nodes = {
        node.id: _plan_node(
            node,
            (tuple(parents[node.id]), tuple(children[node.id])),
            levels[node.id],
            spec,
            version,
        )
        for node in spec.nodes
    }
    roots = tuple(node_id for node_id in ids if not parents[node_id])
    paths, capped = _paths(roots, _successors(ids, children))
    output = compile_template(spec.output) if spec.output is not None else None
    return Plan(
        workflow_id=spec.id,
        version=version,
        checksum=checksum(spec),
        spec=spec,
        nodes=nodes,
        order=order,
        roots=roots,
        leaves=tuple(node_id for node_id in ids if not children[node_id]),
        branch_points=tuple(
            node_id
            for node_id in ids
            if nodes[node_id].type == "switch"
            or any(edge.port == PORT_ERROR for edge in children[node_id])
        ),
        convergence_points=tuple(node_id for node_id in ids if len(parents[node_id]) > 1),
        groups=_groups(ids, levels),
        paths=paths,
        paths_capped=capped,
        output=output,
        output_refs=_refs(output.expressions) if output is not None else frozenset(),
        timeout=spec.timeout,
        max_concurrency=spec.max_concurrency,
        max_executions=spec.max_executions,
        initial_vars=dict(spec.vars),
        input_schema=spec.input_schema,
    )

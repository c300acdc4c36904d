"""Graph-level validation of a workflow definition (DESIGN §2, "Validation"). Pure.

:func:`validate` walks a :class:`~spane.schemas.workflow.WorkflowSpec` and returns
**every** problem it finds, each with a location in the same style as the loader
(``nodes[3].after[1]``, ``nodes[2].when``, ``nodes[4].body.nodes[0].after[0]``,
``triggers[0].filter``, ``output``) and, where one helps, a hint (``did you mean
'charge'?``). Structural problems (types, unknown fields) were already reported by
pydantic; the checks here need the whole graph, and live by concern:

- node ids, ``after`` references and their ports: :mod:`spane.compiler.reference_checks`;
- join thresholds, switch case names, ``break``/``continue`` placement:
  :mod:`spane.compiler.node_checks`;
- expressions and templates: :mod:`spane.compiler.expression_checks`;
- cycles and nodes that can never run: :mod:`spane.compiler.flow_checks`;
- task types sharing a worker pool: :mod:`spane.compiler.pool_checks`.

This module runs them over the workflow and, recursively, every loop body.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spane.compiler.expression_checks import (
    check_template,
    node_expression_problems,
    trigger_problems,
)
from spane.compiler.flow_checks import cycle_problems, reachability_problems
from spane.compiler.graph import topological_order
from spane.compiler.node_checks import node_field_problems
from spane.compiler.pool_checks import pool_problems
from spane.compiler.reference_checks import check_after, index_ids
from spane.compiler.scope import LOOP_ROOTS, Graph, Scope, Site
from spane.errors import Problem
from spane.schemas.suggestions import ordered_problems
from spane.schemas.workflow import LOOP_TYPES, NodeSpec, SetNode, WorkflowSpec

__all__ = ["defined_variables", "validate"]


def _check_node(graph: Graph, index: int) -> None:
    node = graph.nodes[index]
    loc = graph.loc(index)
    check_after(graph, index)
    graph.problems.extend(node_field_problems(node, loc, graph.scope.in_body))
    graph.problems.extend(node_expression_problems(node, loc, graph.scope))
    if node.type in LOOP_TYPES:
        body = getattr(node, "body", None)
        if body is not None:
            variables = graph.scope.variables
            graph.problems.extend(
                _validate_graph(body.nodes, body.output, f"{loc}.body.", variables)
            )


def _validate_graph(
    nodes: Sequence[NodeSpec], output: Any, prefix: str, variables: frozenset[str]
) -> list[Problem]:
    in_body = bool(prefix)
    scope = Scope(prefix, frozenset(node.id for node in nodes), variables, in_body)
    graph = Graph(nodes, scope)
    index_ids(graph)
    for index in range(len(nodes)):
        _check_node(graph, index)
    order, blocked = topological_order(
        len(nodes), ((source, target) for source, _port, target, _pos in graph.edges)
    )
    if blocked:
        cycle_problems(graph, blocked)
    else:
        reachability_problems(graph, order)
    if output is not None:
        what = "a loop body's output" if in_body else "the workflow output"
        site = Site(what, loop_roots=LOOP_ROOTS if in_body else frozenset())
        graph.problems.extend(check_template(output, f"{prefix}output", site, scope))
    return graph.problems


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


def validate(spec: WorkflowSpec) -> list[Problem]:
    """Every graph-level problem of ``spec`` (ordered by location, no repeats); an empty
    list means it compiles."""
    variables = defined_variables(spec)
    problems = _validate_graph(spec.nodes, spec.output, "", variables)
    scope = Scope("", frozenset(node.id for node in spec.nodes), variables, in_body=False)
    problems += trigger_problems(spec, scope)
    problems += pool_problems(spec)
    return ordered_problems(problems)

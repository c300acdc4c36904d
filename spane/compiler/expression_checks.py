"""Validation of a definition's expressions and templates (DESIGN §2, "Validation"). Pure.

Syntax, root names, ``nodes.<id>`` and ``vars.<name>`` references, loop-only and
trigger-only names, and where ``secrets`` may appear (only in what task nodes' workers
render: ``input``, ``request``, ``expect``, ``config``; alone in its expression).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from spane.compiler.graph import is_task, templated_fields
from spane.compiler.hints import did_you_mean
from spane.compiler.scope import LOOP_ROOTS, Scope, Site
from spane.compiler.trigger_checks import trigger_schedule_problems
from spane.errors import ExpressionSyntaxError, Problem
from spane.expressions import KNOWN_ROOTS, Expression, compile_expression, compile_template
from spane.schemas.workflow import EventTrigger, NodeSpec, SwitchNode, WhileNode, WorkflowSpec

__all__ = ["check_template", "node_expression_problems", "trigger_problems"]

_WORKER_FIELDS = frozenset({"input", "request", "expect", "config"})
"""Task-node fields rendered on the worker, the only place ``secrets`` resolve."""


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


def _root_problem(root: str, roots: frozenset[str], site: Site, loc: str) -> Problem | None:
    if root not in KNOWN_ROOTS:
        allowed = (KNOWN_ROOTS - LOOP_ROOTS - {"event", "secrets"}) | site.loop_roots
        if site.secrets:
            allowed |= {"secrets"}
        if site.trigger:
            allowed = frozenset({"event"})
        return Problem(loc, f"unknown name {root!r}", did_you_mean(root, allowed))
    if root in LOOP_ROOTS and root not in site.loop_roots:
        return Problem(loc, f"{root!r} is only available inside a loop body")
    if site.trigger and root != "event":
        return Problem(loc, f"{root!r} is not available in {site.what}", "use 'event'")
    if root == "event" and not site.trigger:
        return Problem(loc, "'event' is only available in a trigger's filter and input")
    if root == "secrets":
        return _secrets_problem(roots, site, loc)
    return None


def _secrets_problem(roots: frozenset[str], site: Site, loc: str) -> Problem | None:
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


def _reference_problems(expr: Expression, site: Site, scope: Scope, loc: str) -> list[Problem]:
    problems = [
        problem
        for root in sorted(expr.roots)
        if (problem := _root_problem(root, expr.roots, site, loc)) is not None
    ]
    for node_id in sorted(expr.node_refs - scope.node_ids):
        hint = did_you_mean(node_id, scope.node_ids)
        if hint is None and scope.in_body:
            hint = "a loop body can only refer to its own nodes"
        problems.append(Problem(loc, f"unknown node {node_id!r} in 'nodes.{node_id}'", hint))
    for name in sorted(expr.var_refs - scope.variables):
        hint = did_you_mean(name, scope.variables) or (
            "define it in the workflow's 'vars:' or with a 'set' node"
        )
        problems.append(Problem(loc, f"variable {name!r} is never defined", hint))
    return problems


def _check_expression(source: str, loc: str, site: Site, scope: Scope) -> list[Problem]:
    try:
        expr = compile_expression(source)
    except ExpressionSyntaxError as exc:
        return [Problem(loc, f"syntax error: {exc}")]
    return _reference_problems(expr, site, scope, loc)


def check_template(value: Any, loc: str, site: Site, scope: Scope) -> list[Problem]:
    """Problems of every ``${ }`` part in the strings of ``value``, located precisely."""
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


def _node_site(node: NodeSpec, name: str, scope: Scope) -> Site:
    loop_roots = LOOP_ROOTS if scope.in_body else frozenset[str]()
    secrets = is_task(node) and name in _WORKER_FIELDS
    what = f"a {node.type} node's {name!r}"
    return Site(what, loop_roots=loop_roots, secrets=secrets)


def _condition_site(what: str, scope: Scope, extra: frozenset[str] = frozenset()) -> Site:
    loop_roots = (LOOP_ROOTS if scope.in_body else frozenset[str]()) | extra
    return Site(what, loop_roots=loop_roots, condition=True)


def node_expression_problems(node: NodeSpec, loc: str, scope: Scope) -> list[Problem]:
    """Problems of a node's conditions (guard, cases, loop condition) and templates."""
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
        problems += check_template(node.input, f"{loc}.input", site, scope)
    for name, value in templated_fields(node):
        site = _node_site(node, name, scope)
        problems += check_template(value, f"{loc}.{name}", site, scope)
    return problems


def trigger_problems(spec: WorkflowSpec, scope: Scope) -> list[Problem]:
    """Problems of the triggers: cron expressions, time zones and webhook paths
    (:mod:`spane.compiler.trigger_checks`), and their filters and inputs (which see
    only ``event``)."""
    problems: list[Problem] = trigger_schedule_problems(spec)
    for position, trigger in enumerate(spec.triggers):
        loc = f"triggers[{position}]"
        if isinstance(trigger, EventTrigger) and trigger.filter is not None:
            site = Site("a trigger's filter", trigger=True, condition=True)
            problems += _check_expression(trigger.filter, f"{loc}.filter", site, scope)
        if trigger.input is not None:
            site = Site("a trigger's input", trigger=True)
            problems += check_template(trigger.input, f"{loc}.input", site, scope)
    return problems

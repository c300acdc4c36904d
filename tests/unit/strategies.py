"""Hypothesis strategies for workflow graphs, shared by the compiler and decision-core tests.

``random_dags()`` draws a **valid** :class:`~spane.schemas.workflow.WorkflowSpec` (it
always compiles) shaped to exercise ports, joins and skip propagation:

- 3 to 25 nodes with ids ``n0``, ``n1``, ... in definition order; each is a
  ``function`` (``function: test.fn``, routed to the function pool), a ``noop`` or a
  ``switch`` with 1-3 cases named ``c0``, ``c1``, ...;
- edges only go to later nodes (so the graph is acyclic and the definition order is
  a topological order); ``n0`` is always a root and later nodes are roots with a small
  probability; each edge comes from a distinct ``(node, port)`` pair, the port drawn
  among ``success``, ``error``, ``always`` and, for switch sources, their case names and
  ``default``;
- every node with upstream edges gets a random join: ``all``, ``any`` or
  ``{at_least: N}`` with ``1 <= N <= its number of edges``, and a random ``aggregate``;
- optional ``when:`` guards and every switch case read ``input.flags[i]`` with
  ``0 <= i < FLAG_COUNT``: run such a workflow with an input from :func:`flag_inputs`
  (``{"flags": [bool, ...]}``) and guards and cases resolve deterministically.

There are no ``fail`` nodes, so no node is unreachable. Consumers decide what each
task does (succeed, fail) themselves, e.g. by drawing a set of failing node ids.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from spane.schemas.workflow import (
    AtLeast,
    FunctionNode,
    NodeSpec,
    NoopNode,
    SwitchCase,
    SwitchNode,
    WorkflowSpec,
)

FLAG_COUNT = 8
"""Length of ``input.flags``: guards and switch cases read ``input.flags[0..7]``."""
BASE_PORTS = ("success", "error", "always")
NODE_TYPES = ("function", "noop", "switch")


def flag_inputs() -> st.SearchStrategy[dict[str, Any]]:
    """Execution inputs for :func:`random_dags`: ``{"flags": [FLAG_COUNT booleans]}``."""
    flags = st.lists(st.booleans(), min_size=FLAG_COUNT, max_size=FLAG_COUNT)
    return st.builds(lambda values: {"flags": values}, flags)


def _flag(draw: st.DrawFn) -> str:
    index = draw(st.integers(0, FLAG_COUNT - 1))
    negate = draw(st.booleans())
    return f"{'!' if negate else ''}input.flags[{index}]"


def _ports(node: NodeSpec) -> list[str]:
    if isinstance(node, SwitchNode):
        return [*BASE_PORTS, "default", *(case.name for case in node.cases)]
    return list(BASE_PORTS)


def _after(draw: st.DrawFn, earlier: list[NodeSpec], max_parents: int) -> tuple[str, ...]:
    """Distinct upstream references to earlier nodes (empty: another root)."""
    if draw(st.integers(0, 9)) == 0:
        return ()
    refs = st.sampled_from(earlier).flatmap(
        lambda node: st.sampled_from(_ports(node)).map(
            lambda port: node.id if port == "success" else f"{node.id}.{port}"
        )
    )
    limit = min(max_parents, sum(len(_ports(node)) for node in earlier))
    return tuple(draw(st.lists(refs, min_size=1, max_size=limit, unique=True)))


def _join(draw: st.DrawFn, edges: int) -> Any:
    if edges == 0:
        return "all"
    choice = draw(st.sampled_from(("all", "any", "at_least")))
    if choice != "at_least":
        return choice
    return AtLeast(at_least=draw(st.integers(1, edges)))


def _node(draw: st.DrawFn, index: int, earlier: list[NodeSpec], max_parents: int) -> NodeSpec:
    after = _after(draw, earlier, max_parents) if earlier else ()
    common: dict[str, Any] = {
        "id": f"n{index}",
        "after": after,
        "join": _join(draw, len(after)),
        "aggregate": draw(st.sampled_from(("map", "list", "merge", "first"))),
        "when": _flag(draw) if draw(st.integers(0, 3)) == 0 else None,
    }
    kind = draw(st.sampled_from(NODE_TYPES))
    if kind == "function":
        return FunctionNode(function="test.fn", **common)
    if kind == "noop":
        return NoopNode(**common)
    count = draw(st.integers(1, 3))
    cases = tuple(SwitchCase(name=f"c{case}", when=_flag(draw)) for case in range(count))
    return SwitchNode(cases=cases, **common)


@st.composite
def random_dags(
    draw: st.DrawFn, min_nodes: int = 3, max_nodes: int = 25, max_parents: int = 4
) -> WorkflowSpec:
    """A valid random DAG workflow (see the module docstring for its shape)."""
    size = draw(st.integers(min_nodes, max_nodes))
    nodes: list[NodeSpec] = []
    for index in range(size):
        nodes.append(_node(draw, index, nodes, max_parents))
    return WorkflowSpec(id="random-dag", nodes=tuple(nodes))

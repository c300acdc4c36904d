"""The processed plan: what the compiler makes of a spec, immutable per (workflow, version).

The decision core reads only this; nothing here is re-parsed per message (expressions
and templates are compiled once, see :mod:`spane.expressions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spane.expressions import Expression, Template
from spane.schemas.workflow import NodeSpec, WorkflowSpec

PORT_SUCCESS = "success"
PORT_ERROR = "error"
PORT_ALWAYS = "always"
PORT_DEFAULT = "default"

MAX_PATHS = 100
"""Path enumeration stops here and sets ``Plan.paths_capped``."""


class NodeKind(StrEnum):
    TASK = "task"  # executed by a worker pool
    CONTROL = "control"  # executed inline by the orchestrator


class JoinMode(StrEnum):
    ALL = "all"  # every edge settled; runs if one fired
    ANY = "any"  # the first fired edge runs it
    AT_LEAST = "at_least"  # N fired edges run it


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` firing ``port`` feeds ``target``."""

    source: str
    port: str
    target: str

    @property
    def key(self) -> str:
        """How the target's state names this edge: ``source.port``."""
        return f"{self.source}.{self.port}"


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """A node's effective retry policy (node over workflow defaults over built-ins)."""

    max_attempts: int = 1
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0
    jitter: bool = True
    non_retryable: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CompiledCase:
    name: str
    condition: Expression


@dataclass(frozen=True, slots=True)
class PlanNode:
    id: str
    type: str
    kind: NodeKind
    spec: NodeSpec
    parents: tuple[Edge, ...]
    """Incoming edges in ``after`` order."""
    children: tuple[Edge, ...]
    """Outgoing edges."""
    join: JoinMode
    threshold: int
    """Fired edges needed (1 for any, N for at_least, 1 for all)."""
    aggregate: str
    guard: Expression | None
    input: Template | None
    templates: Mapping[str, Template]
    """Other templated fields by name: request, config, output, vars, error, items, until."""
    cases: tuple[CompiledCase, ...]
    condition: Expression | None
    """while: loop condition."""
    timeout: float | None
    retry: RetrySettings
    priority: int
    node_refs: frozenset[str]
    """Nodes whose state the node's expressions read (for building the context)."""
    level: int
    body: Plan | None = None
    """Loops with an inline body: the body's own plan."""
    pool: str | None = None
    """Task nodes: the worker pool (queue) their attempts go to (see
    :func:`spane.schemas.pools.node_pool`); None for control nodes."""

    @property
    def ports(self) -> frozenset[str]:
        """Ports this node can fire."""
        base = {PORT_SUCCESS, PORT_ERROR, PORT_ALWAYS}
        if self.cases:
            base |= {case.name for case in self.cases} | {PORT_DEFAULT}
        return frozenset(base)

    @property
    def handles_error(self) -> bool:
        """Whether a failure here is caught by an ``.error`` edge."""
        return any(edge.port == PORT_ERROR for edge in self.children)


@dataclass(frozen=True, slots=True)
class Plan:
    workflow_id: str
    version: int
    checksum: str
    spec: WorkflowSpec
    nodes: Mapping[str, PlanNode]
    order: tuple[str, ...]
    """Topological order."""
    roots: tuple[str, ...]
    leaves: tuple[str, ...]
    branch_points: tuple[str, ...]
    """Nodes with conditional ports (switch cases, error edges, guards downstream)."""
    convergence_points: tuple[str, ...]
    """Nodes with several upstream edges."""
    groups: tuple[tuple[str, ...], ...]
    """Parallel execution groups: topological levels."""
    paths: tuple[tuple[str, ...], ...]
    paths_capped: bool
    output: Template | None
    output_refs: frozenset[str]
    timeout: float | None
    max_concurrency: int | None
    max_executions: int | None
    initial_vars: Mapping[str, Any] = field(default_factory=dict)
    input_schema: Mapping[str, Any] | None = None

    def node(self, node_id: str) -> PlanNode:
        return self.nodes[node_id]

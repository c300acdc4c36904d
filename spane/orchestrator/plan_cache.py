"""Plans by (workflow, version[, body]), compiled once per process and cached."""

from __future__ import annotations

import time
from collections.abc import Callable

from spane.compiler.compile import compile_plan
from spane.compiler.plan import Plan
from spane.errors import WorkflowNotFoundError
from spane.state.base import DefinitionStore, WorkflowRecord


def body_plan(plan: Plan, path: str) -> Plan:
    """The inline body addressed by ``path`` (loop node ids joined by ``/``)."""
    current = plan
    for node_id in path.split("/"):
        node = current.nodes.get(node_id)
        if node is None or node.body is None:
            raise WorkflowNotFoundError(
                f"workflow {plan.workflow_id!r} v{plan.version} has no loop body {path!r}"
            )
        current = node.body
    return current


LATEST_TTL = 2.0
"""Seconds a process trusts its idea of a workflow's latest version (registrations in
this process take effect at once; elsewhere within this time)."""


class PlanCache:
    """Compiles each registered (workflow, version) once; plans are immutable."""

    def __init__(
        self,
        definitions: DefinitionStore,
        *,
        latest_ttl: float = LATEST_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._definitions = definitions
        self._plans: dict[tuple[str, int], Plan] = {}
        self._latest: dict[str, tuple[int, float]] = {}
        self._latest_ttl = latest_ttl
        self._clock = clock

    def put(self, record: WorkflowRecord, plan: Plan) -> None:
        self._plans[(record.workflow_id, record.version)] = plan

    async def get(
        self, workflow_id: str, version: int | None = None, body: str | None = None
    ) -> Plan:
        """Raises :class:`WorkflowNotFoundError`."""
        if version is None:
            latest = self._latest.get(workflow_id)
            if latest is not None and self._clock() - latest[1] < self._latest_ttl:
                version = latest[0]
        if version is not None and (workflow_id, version) in self._plans:
            plan = self._plans[(workflow_id, version)]
        else:
            record = await self._definitions.get(workflow_id, version)
            key = (record.workflow_id, record.version)
            plan = self._plans.get(key) or compile_plan(record.spec, record.version)
            self._plans[key] = plan
            if version is None:
                self._latest[workflow_id] = (record.version, self._clock())
        return body_plan(plan, body) if body else plan

    def forget_latest(self, workflow_id: str | None = None) -> None:
        """A registration happened: look the latest version up again."""
        if workflow_id is None:
            self._latest.clear()
        else:
            self._latest.pop(workflow_id, None)

"""Plans by (workflow, version[, body]), compiled once per process and cached."""

from __future__ import annotations

from spane.errors import WorkflowNotFoundError
from spane.orchestrator.compiler import compile_plan
from spane.orchestrator.plan import Plan
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


class PlanCache:
    """Compiles each registered (workflow, version) once; plans are immutable."""

    def __init__(self, definitions: DefinitionStore) -> None:
        self._definitions = definitions
        self._plans: dict[tuple[str, int], Plan] = {}

    def put(self, record: WorkflowRecord, plan: Plan) -> None:
        self._plans[(record.workflow_id, record.version)] = plan

    async def get(
        self, workflow_id: str, version: int | None = None, body: str | None = None
    ) -> Plan:
        """Raises :class:`WorkflowNotFoundError`."""
        if version is not None and (workflow_id, version) in self._plans:
            plan = self._plans[(workflow_id, version)]
        else:
            record = await self._definitions.get(workflow_id, version)
            key = (record.workflow_id, record.version)
            plan = self._plans.get(key) or compile_plan(record.spec, record.version)
            self._plans[key] = plan
        return body_plan(plan, body) if body else plan

"""Every Redis key SPANE uses, built in one place.

All keys of one execution share the hash tag ``{<execution_id>}`` so that the Lua
scripts touching them stay on one Redis Cluster slot::

    <ns>:{<execution_id>}:meta          hash  meta -> ExecutionMeta JSON, revision -> int
    <ns>:{<execution_id>}:nodes         hash  node id -> NodeState JSON
    <ns>:{<execution_id>}:applied       hash  event id -> recorded commands JSON
    <ns>:{<execution_id>}:applied-log   list  event ids in the order they were applied

Global keys::

    <ns>:timers                         zset  timer id, scored by fire time (or lease end)
    <ns>:timer-data                     hash  timer id -> Timer JSON
    <ns>:executions                     zset  execution id, scored by created_at
    <ns>:to-archive                     zset  finished, not yet archived: id by due time
    <ns>:executions:<workflow_id>       zset  the same, per workflow
    <ns>:start:<scope>:<key>            str   idempotency key -> execution id
    <ns>:claim:<task_id>                hash  worker, expires_at, result (TaskResult JSON)
    <ns>:slots:{<workflow_id>}          set   executions holding a max_executions slot
    <ns>:slots:{<workflow_id>}:queue    zset  executions waiting for one, FIFO by score
"""

from __future__ import annotations

from dataclasses import dataclass

META_FIELD = "meta"
"""Field of the meta hash that holds the ExecutionMeta JSON."""
REVISION_FIELD = "revision"
"""Field of the meta hash that holds the revision (optimistic concurrency)."""


@dataclass(frozen=True, slots=True)
class ExecutionKeys:
    """The keys of one execution (one hash tag)."""

    meta: str
    nodes: str
    applied: str
    applied_log: str
    loops: str
    """Loop data: field (``ExecutionView.loop_values``) -> JSON; only once a for_each ran."""

    def all(self) -> tuple[str, str, str, str]:
        """The keys every execution has."""
        return (self.meta, self.nodes, self.applied, self.applied_log)

    def expiring(self) -> tuple[str, str, str, str, str]:
        """Every key an execution may have (they expire together once archived)."""
        return (*self.all(), self.loops)


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names under one namespace (``Settings.namespace``)."""

    namespace: str

    def execution(self, execution_id: str) -> ExecutionKeys:
        base = f"{self.namespace}:{{{execution_id}}}"
        return ExecutionKeys(
            meta=f"{base}:meta",
            nodes=f"{base}:nodes",
            applied=f"{base}:applied",
            applied_log=f"{base}:applied-log",
            loops=f"{base}:loops",
        )

    @property
    def meta_affixes(self) -> tuple[str, str]:
        """Prefix and suffix around an execution id that make its meta key (for Lua)."""
        return f"{self.namespace}:{{", "}:meta"

    @property
    def timers(self) -> str:
        return f"{self.namespace}:timers"

    @property
    def timer_data(self) -> str:
        return f"{self.namespace}:timer-data"

    @property
    def to_archive(self) -> str:
        return f"{self.namespace}:to-archive"

    @property
    def executions(self) -> str:
        return f"{self.namespace}:executions"

    def workflow_executions(self, workflow_id: str) -> str:
        return f"{self.namespace}:executions:{workflow_id}"

    def start(self, scope: str, key: str) -> str:
        return f"{self.namespace}:start:{scope}:{key}"

    def claim(self, task_id: str) -> str:
        return f"{self.namespace}:claim:{task_id}"

    def slots(self, workflow_id: str) -> str:
        return f"{self.namespace}:slots:{{{workflow_id}}}"

    def slot_queue(self, workflow_id: str) -> str:
        return f"{self.namespace}:slots:{{{workflow_id}}}:queue"

    @property
    def pattern(self) -> str:
        """``SCAN MATCH`` pattern of every key in this namespace."""
        return f"{self.namespace}:*"

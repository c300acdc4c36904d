"""Every Redis key SPANE uses, built in one place.

All keys of one execution share one hash tag so that the Lua scripts touching them stay
on one Redis Cluster slot. On a single Redis server the tag is the execution id and
the indexes are global::

    <ns>:{<execution_id>}:meta          hash  meta -> ExecutionMeta JSON, revision -> int
    <ns>:{<execution_id>}:nodes         hash  node id -> NodeState JSON
    <ns>:{<execution_id>}:applied       hash  event id -> recorded commands JSON
    <ns>:{<execution_id>}:applied-log   list  event ids in the order they were applied
    <ns>:{<execution_id>}:loops         hash  loop data field -> JSON (for_each items, results)
    <ns>:executions                     zset  execution id, scored by created_at
    <ns>:executions:<workflow_id>       zset  the same, per workflow
    <ns>:to-archive                     zset  finished, not yet archived: id by due time
    <ns>:claim:<task_id>                hash  worker, expires_at, result (TaskResult JSON)
    <ns>:timers                         zset  timer id, scored by fire time (or lease end)
    <ns>:timer-data                     hash  timer id -> Timer JSON

On a Redis Cluster (``shards`` set) an execution belongs to one of ``shards`` shards,
chosen by a stable hash of its id, and the tag is the shard's: the indexes and timers
an execution's commit writes atomically (the listing indexes, the to-archive queue,
the timers) and its task claims are kept per shard, in the shard's slot, so every
script stays on one slot::

    <ns>:{s<k>}:e:<execution_id>:meta   (and :nodes, :applied, :applied-log, :loops)
    <ns>:{s<k>}:executions              (and :executions:<workflow_id>, :to-archive,
                                        :timers, :timer-data)
    <ns>:{s<k>}:claim:<task_id>

Both layouts::

    <ns>:start:<scope>:<key>            str   idempotency key -> execution id
    <ns>:cron                           zset  cron schedule key -> last tick fired
    <ns>:slots:{<workflow_id>}          set   executions holding a max_executions slot
    <ns>:slots:{<workflow_id>}:queue    zset  executions waiting for one, FIFO by score
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from spane.state.base import execution_of_task

META_FIELD = "meta"
"""Field of the meta hash that holds the ExecutionMeta JSON."""
REVISION_FIELD = "revision"
"""Field of the meta hash that holds the revision (optimistic concurrency)."""
INPUT_FIELD = "input"
"""Field of the meta hash that holds the execution's input JSON, written once by the
create (the ``meta`` JSON then leaves it out, so a commit does not rewrite it).
Executions created before it existed hold their input in the ``meta`` JSON."""

CLUSTER_SHARDS = 256
"""Shards of a Redis Cluster deployment: an execution's keys and the indexes it is
written to share its shard's slot. Fixed: changing it would lose track of existing
executions. 256 slots spread evenly over any cluster of up to a few dozen masters."""


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The indexes of one shard (the global ones on a single server)."""

    executions: str
    to_archive: str
    timers: str
    timer_data: str
    meta_prefix: str
    meta_suffix: str
    """``meta_prefix + execution_id + meta_suffix`` is an execution's meta key (for Lua)."""

    def workflow_executions(self, workflow_id: str) -> str:
        return f"{self.executions}:{workflow_id}"

    @property
    def meta_affixes(self) -> tuple[str, str]:
        """Prefix and suffix around an execution id that make its meta key (for Lua)."""
        return self.meta_prefix, self.meta_suffix


@dataclass(frozen=True, slots=True)
class ExecutionKeys:
    """The keys of one execution (one hash tag), and its shard's indexes."""

    meta: str
    nodes: str
    applied: str
    applied_log: str
    loops: str
    """Loop data: field (``ExecutionView.loop_values``) -> JSON; only once a for_each ran."""
    shard: ShardKeys

    def all(self) -> tuple[str, str, str, str]:
        """The keys every execution has."""
        return (self.meta, self.nodes, self.applied, self.applied_log)

    def expiring(self) -> tuple[str, str, str, str, str]:
        """Every key an execution may have (they expire together once archived)."""
        return (*self.all(), self.loops)


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names under one namespace (``Settings.namespace``).

    ``shards`` is None on a single Redis server, :data:`CLUSTER_SHARDS` on a cluster.
    """

    namespace: str
    shards: int | None = None

    @property
    def cluster(self) -> bool:
        return self.shards is not None

    def shard_tag(self, execution_id: str) -> str:
        """The hash tag of an execution's keys: its own id, or its shard's on a cluster."""
        if self.shards is None:
            return execution_id
        return f"s{zlib.crc32(execution_id.encode()) % self.shards}"

    def shard(self, tag: str) -> ShardKeys:
        """The indexes of the shard tagged ``tag`` (the global ones on a single server)."""
        if self.shards is None:
            ns = self.namespace
            base, prefix, suffix = ns, f"{ns}:{{", "}:meta"
        else:
            base = f"{self.namespace}:{{{tag}}}"
            prefix, suffix = f"{base}:e:", ":meta"
        return ShardKeys(
            executions=f"{base}:executions",
            to_archive=f"{base}:to-archive",
            timers=f"{base}:timers",
            timer_data=f"{base}:timer-data",
            meta_prefix=prefix,
            meta_suffix=suffix,
        )

    def all_shards(self) -> list[ShardKeys]:
        """Every shard's indexes: one entry (the global indexes) on a single server."""
        if self.shards is None:
            return [self.shard("")]
        return [self.shard(f"s{k}") for k in range(self.shards)]

    def execution(self, execution_id: str) -> ExecutionKeys:
        tag = self.shard_tag(execution_id)
        if self.shards is None:
            base = f"{self.namespace}:{{{execution_id}}}"
        else:
            base = f"{self.namespace}:{{{tag}}}:e:{execution_id}"
        return ExecutionKeys(
            meta=f"{base}:meta",
            nodes=f"{base}:nodes",
            applied=f"{base}:applied",
            applied_log=f"{base}:applied-log",
            loops=f"{base}:loops",
            shard=self.shard(tag),
        )

    def timer_shard(self, execution_id: str) -> ShardKeys:
        """The shard whose timer keys hold an execution's timers."""
        return self.shard(self.shard_tag(execution_id))

    @property
    def cron(self) -> str:
        return f"{self.namespace}:cron"

    def start(self, scope: str, key: str) -> str:
        return f"{self.namespace}:start:{scope}:{key}"

    def claim(self, task_id: str) -> str:
        """A task attempt's claim; on a cluster in its execution's shard (the claim
        script reads the execution's nodes). Task ids are ``<execution>:<node>:<attempt>``
        (:func:`spane.core.ids.task_id`)."""
        if self.shards is None:
            return f"{self.namespace}:claim:{task_id}"
        tag = self.shard_tag(execution_of_task(task_id))
        return f"{self.namespace}:{{{tag}}}:claim:{task_id}"

    def slots(self, workflow_id: str) -> str:
        return f"{self.namespace}:slots:{{{workflow_id}}}"

    def slot_queue(self, workflow_id: str) -> str:
        return f"{self.namespace}:slots:{{{workflow_id}}}:queue"

    @property
    def pattern(self) -> str:
        """``SCAN MATCH`` pattern of every key in this namespace."""
        return f"{self.namespace}:*"

"""Runtime state in Redis: :class:`~spane.state.base.StateStore` for distributed mode.

Each public call is one round trip: a Lua script (atomic steps: create, commit, timer
and task claims, listing) or a pipeline. A commit writes the meta, the nodes the view
changed and the applied-event record, guarded by the execution's revision; its cost
grows with the changed nodes, never with the workflow's size. Finished executions
expire ``retention`` seconds after they are archived (never before). Key layout:
:mod:`spane.state.keys`; scripts and their contracts: :mod:`spane.state.redis_scripts`;
arguments and replies: :mod:`spane.state.redis_codec`; batched script calls and the
cancellation guard: :mod:`spane.state.redis_calls`; task claims, slots, start keys and
cron cursors: :mod:`spane.state.redis_claims`.

A ``redis+cluster://`` URL selects a Redis Cluster (:mod:`spane.state.redis_connect`):
each execution's keys, its shard's indexes and its task claims share one slot, so every
script and every transaction stays on one node; reads across executions are pipelined,
each node getting its part at once (:mod:`spane.state.redis_shards`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from itertools import chain
from typing import Any

from pydantic_core import to_json

from spane.schemas.claims import ClaimInfo
from spane.schemas.commands import Command
from spane.schemas.messages import TaskResult
from spane.schemas.state import (
    TERMINAL_EXECUTION_STATUSES,
    ExecutionMeta,
    NodeState,
    Timer,
)
from spane.schemas.view import ExecutionView
from spane.state import redis_scripts
from spane.state.base import ClaimRequest, TaskClaim, execution_of_task
from spane.state.keys import (
    CLUSTER_SHARDS,
    INPUT_FIELD,
    META_FIELD,
    REVISION_FIELD,
    RedisKeys,
    ShardKeys,
)
from spane.state.serde import encode_commands, timer_changes

try:
    from redis.commands.core import AsyncScript
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        'RedisStateStore needs the redis client: pip install "spane[distributed]"'
    ) from exc

# After the guard above: these modules use the redis client too.
from redis.exceptions import NoScriptError

from spane.state.redis_calls import ScriptCall, keeps_cancellation, run_each
from spane.state.redis_claims import RedisClaims
from spane.state.redis_codec import (
    LazyNodes,
    LazyValues,
    Loaded,
    decode_nodes,
    event_pairs,
    fetched_nodes,
    loaded_execution,
    loop_pairs,
    node_pairs,
    stored_meta,
    text,
    timer_args,
)
from spane.state.redis_connect import AnyRedis, client_for, is_cluster_url
from spane.state.redis_shards import claim_due, earliest, list_metas

MAX_APPLIED_PER_EXECUTION = 10_000
"""Applied-event records kept per execution (oldest dropped), as in the memory store."""
_INPUT = {"input"}
"""What a meta JSON leaves out once the create stored the input apart (INPUT_FIELD)."""

_Script = Callable[..., Any]


class RedisStateStore:
    """:class:`~spane.state.base.StateStore` on a Redis 7 server or cluster."""

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "spane",
        retention: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
        max_applied: int = MAX_APPLIED_PER_EXECUTION,
    ) -> None:
        if retention <= 0:
            raise ValueError("retention must be positive")
        if max_applied < 1:
            raise ValueError("max_applied must be at least 1")
        self.keys = RedisKeys(namespace, CLUSTER_SHARDS if is_cluster_url(url) else None)
        self.retention = retention
        self._retention_ms = max(1, round(retention * 1000))
        self._max_applied = max_applied
        self._clock = clock
        self._redis: AnyRedis = client_for(url)
        register = self._redis.register_script
        self._create: _Script = register(redis_scripts.CREATE)
        self._commit: AsyncScript = register(redis_scripts.COMMIT)
        self._list: AsyncScript = register(redis_scripts.LIST_EXECUTIONS)
        self._prefetch: AsyncScript = register(redis_scripts.PREFETCH_LOOP)
        self._update_timers: AsyncScript = register(redis_scripts.UPDATE_TIMERS)
        self._claim_timers: AsyncScript = register(redis_scripts.CLAIM_TIMERS)
        self._ack_timers: AsyncScript = register(redis_scripts.ACK_TIMERS)
        self._claim_archive: AsyncScript = register(redis_scripts.CLAIM_ARCHIVE)
        self._claims = RedisClaims(self._redis, self.keys, self._retention_ms, clock)

    @keeps_cancellation
    async def connect(self) -> None:
        """Check that the server answers (fails fast on a wrong URL or a server down).

        Optional: the client connects lazily on first use and reconnects by itself.
        """
        await self._redis.ping()

    @property
    def client(self) -> AnyRedis:
        """The underlying client (for health checks and tests)."""
        return self._redis

    async def close(self) -> None:
        await self._redis.aclose()

    # ----------------------------------------------------------- executions
    @keeps_cancellation
    async def create(self, view: ExecutionView, event_id: str, commands: Sequence[Command]) -> bool:
        meta = view.meta
        keys = self.keys.execution(meta.id)
        cancelled, scheduled = timer_changes(commands)
        meta_json, input_json = meta.model_dump_json(exclude=_INPUT), to_json(view.input)
        nodes = node_pairs(view.changed_nodes)
        created = await self._create(
            keys=[
                *keys.all(),
                keys.shard.executions,
                keys.shard.workflow_executions(meta.workflow_id),
                keys.shard.to_archive,
                keys.loops,
                keys.shard.timers,
                keys.shard.timer_data,
            ],
            args=[
                meta_json,
                event_id,
                encode_commands(commands),
                self._max_applied,
                _archive_due(meta),
                repr(meta.created_at),
                meta.id,
                len(view.changed_loop_values),
                len(cancelled),
                len(scheduled),
                input_json,
                *loop_pairs(view.changed_loop_values),
                *timer_args(cancelled, scheduled),
                *nodes,
            ],
        )
        if int(created) != 1:
            return False
        view.revision = 1
        view.input_apart = True  # its commits leave the input alone
        view.held_bytes = len(meta_json) + len(input_json) + _sizes(nodes)
        return True

    @keeps_cancellation
    async def load_many(
        self,
        requests: Mapping[str, Sequence[str]],
        loops: Mapping[str, Mapping[str, int]] | None = None,
        nodes: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, Loaded]:
        if not requests:
            return {}
        loops = loops or {}
        wanted = {eid: list(ids) for eid, ids in (nodes or {}).items() if ids}
        try:
            replies = iter(await self._load_pipeline(requests, loops, wanted))
        except NoScriptError:  # the server lost the prefetch script (restart, flush)
            self._prefetch.sha = await self._redis.script_load(self._prefetch.script)
            replies = iter(await self._load_pipeline(requests, loops, wanted))
        loaded: dict[str, Loaded] = {}
        for execution_id, event_ids in requests.items():
            meta, raw_nodes = next(replies), next(replies)
            fetched = wanted.get(execution_id)
            if fetched is not None:
                raw_nodes = fetched_nodes(fetched, raw_nodes)
            recorded = next(replies) if event_ids else []
            fields: list[Any] = []
            for _ in loops.get(execution_id, {}):
                fields += next(replies)
            loaded[execution_id] = loaded_execution(
                event_ids, meta, raw_nodes, recorded, fields, fetched
            )
        return loaded

    async def _load_pipeline(
        self,
        requests: Mapping[str, Sequence[str]],
        loops: Mapping[str, Mapping[str, int]],
        nodes: Mapping[str, list[str]],
    ) -> list[Any]:
        """One pipeline reading each execution's meta, nodes (all, or those ``nodes``
        names), applied records and the loop data its loop events will likely read
        (PREFETCH_LOOP).

        A transaction on one server. On a cluster it cannot span executions (their
        slots differ), and it need not: the meta is read first, every commit changes
        the revision with the nodes, so a view mixing a revision with later nodes fails
        its commit and is loaded again.
        """
        async with self._redis.pipeline(transaction=not self.keys.cluster) as pipe:
            for execution_id, event_ids in requests.items():
                keys = self.keys.execution(execution_id)
                pipe.hmget(keys.meta, [META_FIELD, REVISION_FIELD, INPUT_FIELD])
                fetched = nodes.get(execution_id)
                if fetched is None:
                    pipe.hgetall(keys.nodes)
                else:
                    pipe.hmget(keys.nodes, fetched)
                if event_ids:
                    pipe.hmget(keys.applied, list(event_ids))
                for node_id, count in loops.get(execution_id, {}).items():
                    pipe.evalsha(self._prefetch.sha, 2, keys.nodes, keys.loops, node_id, count)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    @keeps_cancellation
    async def load_loop_values(self, execution_id: str, fields: Sequence[str]) -> dict[str, Any]:
        if not fields:
            return {}
        raw: list[bytes | str | None] = await self._redis.hmget(
            self.keys.execution(execution_id).loops, list(fields)
        )
        values = LazyValues(dict(zip(fields, raw, strict=True)))
        return {name: values[name] for name in fields}

    @keeps_cancellation
    async def commit_each(
        self, commits: Sequence[tuple[ExecutionView, Mapping[str, Sequence[Command]]]]
    ) -> list[bool]:
        calls = [self._commit_call(view, records) for view, records in commits]
        revisions = await run_each(self._redis, self._commit, calls)
        committed: list[bool] = []
        for (view, _), reply in zip(commits, revisions, strict=True):
            revision = int(reply)  # -1: the stored revision differed, nothing was written
            if revision >= 0:
                view.revision = revision
            committed.append(revision >= 0)
        return committed

    def _commit_call(
        self, view: ExecutionView, records: Mapping[str, Sequence[Command]]
    ) -> ScriptCall:
        """Keys and arguments of the COMMIT script for one view and its records."""
        meta = view.meta
        cancelled, scheduled = timer_changes(chain.from_iterable(records.values()))
        nodes = node_pairs(view.changed_nodes)
        view.held_bytes += _sizes(nodes)  # what a view settled from it holds in addition
        args: list[Any] = [
            view.revision,
            meta.model_dump_json(exclude=_INPUT) if view.input_apart else meta.model_dump_json(),
            self._max_applied,
            _archive_due(meta),
            meta.id,
            len(records),
            len(view.changed_loop_values),
            len(cancelled),
            len(scheduled),
            repr(meta.created_at),
            *event_pairs(records),
            *loop_pairs(view.changed_loop_values),
            *timer_args(cancelled, scheduled),
            *nodes,
        ]
        keys = self.keys.execution(meta.id)
        shard = keys.shard
        return [*keys.all(), shard.to_archive, keys.loops, shard.timers, shard.timer_data], args

    @keeps_cancellation
    async def get_meta(self, execution_id: str) -> ExecutionMeta | None:
        raw, raw_input = await self._redis.hmget(
            self.keys.execution(execution_id).meta, [META_FIELD, INPUT_FIELD]
        )
        return None if raw is None else stored_meta(raw, raw_input)

    @keeps_cancellation
    async def get_executions(
        self, execution_ids: Sequence[str]
    ) -> list[tuple[ExecutionMeta, dict[str, NodeState]]]:
        if not execution_ids:
            return []
        loaded = await self.load_many({execution_id: () for execution_id in execution_ids})
        return [
            (view.full_meta(), view.all_nodes()) for view, _ in loaded.values() if view is not None
        ]

    @keeps_cancellation
    async def get_nodes(self, execution_id: str) -> dict[str, NodeState]:
        raw: dict[bytes | str, bytes | str] = await self._redis.hgetall(
            self.keys.execution(execution_id).nodes
        )
        return decode_nodes(raw)

    @keeps_cancellation
    async def list_executions(
        self, workflow_id: str | None = None, limit: int = 100
    ) -> list[ExecutionMeta]:
        if limit <= 0:
            return []
        shards = self.keys.all_shards()
        found = await list_metas(self._redis, self._list, shards, workflow_id, limit)
        metas = [stored_meta(raw, raw_input) for raw, raw_input in found]
        if len(shards) > 1:  # each shard's are newest first; the union is not
            metas.sort(key=lambda meta: meta.created_at, reverse=True)
        return metas[:limit]

    # --------------------------------------------------------------- timers
    @keeps_cancellation
    async def update_timers(self, schedule: Sequence[Timer], cancel: Sequence[str]) -> None:
        if not schedule and not cancel:
            return
        latest = {timer.id: timer for timer in schedule}  # the last one of an id wins
        groups: dict[ShardKeys, tuple[list[str], list[Timer]]] = {}
        for timer_id in cancel:
            groups.setdefault(self._timer_shard(timer_id), ([], []))[0].append(timer_id)
        for timer in latest.values():
            shard = self.keys.timer_shard(timer.execution_id)
            groups.setdefault(shard, ([], []))[1].append(timer)
        calls: list[ScriptCall] = [
            (_timer_keys(shard), [len(c), len(s), *timer_args(c, s)])
            for shard, (c, s) in groups.items()
        ]
        await run_each(self._redis, self._update_timers, calls)

    def _timer_shard(self, timer_id: str) -> ShardKeys:
        """The shard of a timer known by id (``<kind>:<execution>:<node>:<attempt>``,
        :func:`spane.core.ids.timer_id`; node ids hold no colon)."""
        if not self.keys.cluster:
            return self.keys.shard("")
        parts = timer_id.split(":", 1)
        if len(parts) < 2 or parts[1].count(":") < 2:
            raise ValueError(
                f"timer id {timer_id!r} names no execution (<kind>:<execution>:<node>:<attempt>)"
            )
        return self.keys.timer_shard(execution_of_task(parts[1]))

    @keeps_cancellation
    async def claim_due_timers(self, now: float, limit: int, lease: float = 30.0) -> list[Timer]:
        if limit <= 0:
            return []
        shards = self.keys.all_shards()
        claimed = await claim_due(
            self._redis, self._claim_timers, shards, _timer_keys, now, limit, lease
        )
        return [Timer.model_validate_json(raw) for raw in claimed]

    @keeps_cancellation
    async def ack_timers(self, timers: Sequence[Timer]) -> None:
        if not timers:
            return
        groups: dict[ShardKeys, list[str]] = {}
        for timer in timers:
            shard = self.keys.timer_shard(timer.execution_id)
            groups.setdefault(shard, []).extend((timer.id, timer.model_dump_json()))
        calls: list[ScriptCall] = [(_timer_keys(shard), args) for shard, args in groups.items()]
        await run_each(self._redis, self._ack_timers, calls)

    @keeps_cancellation
    async def next_timer_at(self) -> float | None:
        return await earliest(self._redis, [shard.timers for shard in self.keys.all_shards()])

    # ------------------------------------------- idempotency, slots and claims
    # (one round trip each: :class:`~spane.state.redis_claims.RedisClaims`)
    async def claim_start_key(self, scope: str, key: str, execution_id: str) -> str:
        return await self._claims.claim_start_key(scope, key, execution_id)

    async def cron_cursors(self, keys: Sequence[str]) -> dict[str, float]:
        return await self._claims.cron_cursors(keys)

    async def advance_cron_cursors(self, ticks: Mapping[str, float]) -> None:
        await self._claims.advance_cron_cursors(ticks)

    async def acquire_slot(self, workflow_id: str, execution_id: str, limit: int) -> bool:
        return await self._claims.acquire_slot(workflow_id, execution_id, limit)

    async def release_slot(self, workflow_id: str, execution_id: str, limit: int) -> list[str]:
        return await self._claims.release_slot(workflow_id, execution_id, limit)

    async def slot_holders(self, workflow_id: str) -> list[str]:
        return await self._claims.slot_holders(workflow_id)

    async def claim_tasks(self, requests: Sequence[ClaimRequest]) -> list[TaskClaim]:
        return await self._claims.claim_tasks(requests)

    async def cancel_tasks(self, task_ids: Sequence[str]) -> None:
        await self._claims.cancel_tasks(task_ids)

    async def get_claim(self, task_id: str) -> ClaimInfo | None:
        return await self._claims.get_claim(task_id)

    async def finish_tasks(self, results: Sequence[TaskResult]) -> None:
        await self._claims.finish_tasks(results)

    # -------------------------------------------------------------- archive
    @keeps_cancellation
    async def claim_unarchived(self, now: float, limit: int, lease: float) -> list[str]:
        if limit <= 0:
            return []
        shards = self.keys.all_shards()
        claimed = await claim_due(
            self._redis, self._claim_archive, shards, _archive_keys, now, limit, lease
        )
        return [text(raw) for raw in claimed]

    @keeps_cancellation
    async def mark_archived(self, execution_ids: Sequence[str]) -> None:
        if not execution_ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for execution_id in execution_ids:
                keys = self.keys.execution(execution_id)
                for key in keys.expiring():
                    pipe.pexpire(key, self._retention_ms)
                pipe.zrem(keys.shard.to_archive, execution_id)
            await pipe.execute()


def _timer_keys(shard: ShardKeys) -> list[str]:
    return [shard.timers, shard.timer_data]


def _archive_keys(shard: ShardKeys) -> list[str]:
    return [shard.to_archive]


def _sizes(pairs: Sequence[str]) -> int:
    """The length of the values of flat key / value pairs."""
    return sum(len(value) for value in pairs[1::2])


def _archive_due(meta: ExecutionMeta) -> str:
    """When a finished execution is due for the archive (its finish); '0' while live."""
    if meta.status not in TERMINAL_EXECUTION_STATUSES:
        return "0"
    return repr(meta.finished_at or meta.created_at)


__all__ = ["MAX_APPLIED_PER_EXECUTION", "LazyNodes", "RedisStateStore"]

"""Runtime state in Redis: :class:`~spane.state.base.StateStore` for distributed mode.

Each public call is one round trip: a Lua script (atomic steps: create, commit, timer
and task claims, listing) or a pipeline. A commit writes the meta, the nodes the view
changed and the applied-event record, guarded by the execution's revision; its cost
grows with the changed nodes, never with the workflow's size. Finished executions
expire after ``retention`` seconds (they are archived elsewhere). Key layout:
:mod:`spane.state.keys`; scripts and their contracts: :mod:`spane.state.redis_scripts`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from spane.errors import StateConflictError
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
from spane.state.base import Applied, ClaimOutcome, ClaimRequest, TaskClaim
from spane.state.keys import META_FIELD, REVISION_FIELD, ExecutionKeys, RedisKeys
from spane.state.serde import decode_commands, encode_commands

try:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript
    from redis.exceptions import NoScriptError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        'RedisStateStore needs the redis client: pip install "spane[distributed]"'
    ) from exc

MAX_APPLIED_PER_EXECUTION = 10_000
"""Applied-event records kept per execution (oldest dropped), as in the memory store."""

_Script = Callable[..., Any]
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _keeps_cancellation(
    method: Callable[_P, Awaitable[_R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Re-raise a cancellation of the calling task that the Redis client swallowed.

    redis-py sends commands through ``asyncio.wait_for`` (it has a socket timeout by
    default), and before Python 3.12 ``wait_for`` returns the result instead of raising
    when the task is cancelled just as the command completes (CPython gh-86296). A task
    cancelled then would run on: a timer loop, say, would never stop. The task's cancel
    count tells: it grew during the call, yet no ``CancelledError`` came out.
    """

    @functools.wraps(method)
    async def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        result = await method(*args, **kwargs)
        if task is not None and task.cancelling() > requested:
            raise asyncio.CancelledError
        return result

    return call


class RedisStateStore:
    """:class:`~spane.state.base.StateStore` on a Redis 7 server."""

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
        self.keys = RedisKeys(namespace)
        self.retention = retention
        self._retention_ms = max(1, round(retention * 1000))
        self._max_applied = max_applied
        self._clock = clock
        self._redis: Redis = Redis.from_url(url)
        register = self._redis.register_script
        self._create: _Script = register(redis_scripts.CREATE)
        self._commit: AsyncScript = register(redis_scripts.COMMIT)
        self._list: _Script = register(redis_scripts.LIST_EXECUTIONS)
        self._claim_timers: _Script = register(redis_scripts.CLAIM_TIMERS)
        self._ack_timers: _Script = register(redis_scripts.ACK_TIMERS)
        self._claim_task: AsyncScript = register(redis_scripts.CLAIM_TASK)
        self._acquire_slot: _Script = register(redis_scripts.ACQUIRE_SLOT)
        self._release_slot: _Script = register(redis_scripts.RELEASE_SLOT)

    @_keeps_cancellation
    async def connect(self) -> None:
        """Check that the server answers (fails fast on a wrong URL or a server down).

        Optional: the client connects lazily on first use and reconnects by itself.
        """
        await self._redis.ping()

    @property
    def client(self) -> Redis:
        """The underlying client (for health checks and tests)."""
        return self._redis

    async def close(self) -> None:
        await self._redis.aclose()

    # ----------------------------------------------------------- executions
    @_keeps_cancellation
    async def create(self, view: ExecutionView, event_id: str, commands: Sequence[Command]) -> bool:
        meta = view.meta
        keys = self.keys.execution(meta.id)
        created = await self._create(
            keys=[
                *keys.all(),
                self.keys.executions,
                self.keys.workflow_executions(meta.workflow_id),
            ],
            args=[
                meta.model_dump_json(),
                event_id,
                encode_commands(commands),
                self._max_applied,
                self._expire_ms(meta),
                repr(meta.created_at),
                meta.id,
                *_node_pairs(view.changed_nodes),
            ],
        )
        if int(created) != 1:
            return False
        view.revision = 1
        return True

    async def load(self, execution_id: str) -> ExecutionView | None:
        view, _ = await self.load_with(execution_id, ())
        return view

    @_keeps_cancellation
    async def applied(self, execution_id: str, event_id: str) -> Applied | None:
        raw: bytes | str | None = await self._redis.hget(
            self.keys.execution(execution_id).applied, event_id
        )
        return None if raw is None else Applied(decode_commands(raw))

    async def load_with(
        self, execution_id: str, event_ids: Sequence[str]
    ) -> tuple[ExecutionView | None, dict[str, Applied]]:
        return (await self.load_many({execution_id: event_ids}))[execution_id]

    @_keeps_cancellation
    async def load_many(
        self, requests: Mapping[str, Sequence[str]]
    ) -> dict[str, tuple[ExecutionView | None, dict[str, Applied]]]:
        async with self._redis.pipeline(transaction=True) as pipe:
            for execution_id, event_ids in requests.items():
                keys = self.keys.execution(execution_id)
                pipe.hmget(keys.meta, [META_FIELD, REVISION_FIELD])
                pipe.hgetall(keys.nodes)
                if event_ids:
                    pipe.hmget(keys.applied, list(event_ids))
            replies = iter(await pipe.execute())
        loaded: dict[str, tuple[ExecutionView | None, dict[str, Applied]]] = {}
        for execution_id, event_ids in requests.items():
            (raw_meta, raw_revision), raw_nodes = next(replies), next(replies)
            recorded = next(replies) if event_ids else []
            if raw_meta is None:
                loaded[execution_id] = (None, {})
                continue
            applied = {
                event_id: Applied(decode_commands(raw))
                for event_id, raw in zip(event_ids, recorded, strict=True)
                if raw is not None
            }
            meta = ExecutionMeta.model_validate_json(raw_meta)
            view = ExecutionView(meta, LazyNodes(raw_nodes), int(raw_revision))
            loaded[execution_id] = (view, applied)
        return loaded

    async def commit(self, view: ExecutionView, event_id: str, commands: Sequence[Command]) -> None:
        await self.commit_many(view, {event_id: commands})

    async def commit_many(
        self, view: ExecutionView, records: Mapping[str, Sequence[Command]]
    ) -> None:
        if not (await self.commit_each([(view, records)]))[0]:
            raise StateConflictError(f"execution {view.meta.id} changed since it was loaded")

    @_keeps_cancellation
    async def commit_each(
        self, commits: Sequence[tuple[ExecutionView, Mapping[str, Sequence[Command]]]]
    ) -> list[bool]:
        calls = [self._commit_call(view, records) for view, records in commits]
        revisions = await self._run_each(self._commit, calls)
        committed: list[bool] = []
        for (view, _), reply in zip(commits, revisions, strict=True):
            revision = int(reply)  # -1: the stored revision differed, nothing was written
            if revision >= 0:
                view.revision = revision
            committed.append(revision >= 0)
        return committed

    def _commit_call(
        self, view: ExecutionView, records: Mapping[str, Sequence[Command]]
    ) -> tuple[list[str], list[Any]]:
        """Keys and arguments of the COMMIT script for one view and its records."""
        meta = view.meta
        keys: ExecutionKeys = self.keys.execution(meta.id)
        events: list[str | bytes] = []
        for event_id, commands in records.items():
            events += (event_id, encode_commands(commands))
        args: list[Any] = [
            view.revision,
            meta.model_dump_json(),
            self._max_applied,
            self._expire_ms(meta),
            len(records),
            *events,
            *_node_pairs(view.changed_nodes),
        ]
        return list(keys.all()), args

    @_keeps_cancellation
    async def get_meta(self, execution_id: str) -> ExecutionMeta | None:
        raw: bytes | str | None = await self._redis.hget(
            self.keys.execution(execution_id).meta, META_FIELD
        )
        return None if raw is None else ExecutionMeta.model_validate_json(raw)

    @_keeps_cancellation
    async def get_executions(
        self, execution_ids: Sequence[str]
    ) -> list[tuple[ExecutionMeta, dict[str, NodeState]]]:
        if not execution_ids:
            return []
        loaded = await self.load_many({execution_id: () for execution_id in execution_ids})
        return [(view.meta, view.all_nodes()) for view, _ in loaded.values() if view is not None]

    @_keeps_cancellation
    async def get_nodes(self, execution_id: str) -> dict[str, NodeState]:
        raw: dict[bytes | str, bytes | str] = await self._redis.hgetall(
            self.keys.execution(execution_id).nodes
        )
        return _decode_nodes(raw)

    @_keeps_cancellation
    async def list_executions(
        self, workflow_id: str | None = None, limit: int = 100
    ) -> list[ExecutionMeta]:
        if limit <= 0:
            return []
        index = (
            self.keys.executions
            if workflow_id is None
            else self.keys.workflow_executions(workflow_id)
        )
        prefix, suffix = self.keys.meta_affixes
        found: list[bytes] = await self._list(
            keys=[index, self.keys.executions], args=[limit, prefix, suffix]
        )
        return [ExecutionMeta.model_validate_json(raw) for raw in found]

    # --------------------------------------------------------------- timers
    @_keeps_cancellation
    async def schedule_timers(self, timers: Sequence[Timer]) -> None:
        await self.update_timers(timers, ())

    @_keeps_cancellation
    async def cancel_timers(self, timer_ids: Sequence[str]) -> None:
        await self.update_timers((), timer_ids)

    @_keeps_cancellation
    async def update_timers(self, schedule: Sequence[Timer], cancel: Sequence[str]) -> None:
        if not schedule and not cancel:
            return
        latest = {timer.id: timer for timer in schedule}  # the last one of an id wins
        async with self._redis.pipeline(transaction=True) as pipe:
            if cancel:
                pipe.zrem(self.keys.timers, *cancel)
                pipe.hdel(self.keys.timer_data, *cancel)
            if latest:
                pipe.zadd(self.keys.timers, {tid: t.fire_at for tid, t in latest.items()})
                pipe.hset(
                    self.keys.timer_data,
                    mapping={tid: t.model_dump_json() for tid, t in latest.items()},
                )
            await pipe.execute()

    @_keeps_cancellation
    async def claim_due_timers(self, now: float, limit: int, lease: float = 30.0) -> list[Timer]:
        if limit <= 0:
            return []
        claimed: list[bytes] = await self._claim_timers(
            keys=[self.keys.timers, self.keys.timer_data],
            args=[repr(now), limit, repr(now + lease)],
        )
        return [Timer.model_validate_json(raw) for raw in claimed]

    @_keeps_cancellation
    async def ack_timers(self, timers: Sequence[Timer]) -> None:
        if not timers:
            return
        args: list[str] = []
        for timer in timers:
            args += (timer.id, timer.model_dump_json())
        await self._ack_timers(keys=[self.keys.timers, self.keys.timer_data], args=args)

    @_keeps_cancellation
    async def next_timer_at(self) -> float | None:
        first: list[Any] = await self._redis.zrange(self.keys.timers, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    # ------------------------------------------- idempotency, slots and claims
    @_keeps_cancellation
    async def claim_start_key(self, scope: str, key: str, execution_id: str) -> str:
        previous: bool | str | bytes | None = await self._redis.set(
            self.keys.start(scope, key),
            execution_id,
            nx=True,
            get=True,
            px=self._retention_ms,
        )
        return execution_id if previous is None else _text(previous)

    @_keeps_cancellation
    async def acquire_slot(self, workflow_id: str, execution_id: str, limit: int) -> bool:
        held = await self._acquire_slot(
            keys=[self.keys.slots(workflow_id), self.keys.slot_queue(workflow_id)],
            args=[execution_id, limit],
        )
        return int(held) == 1

    @_keeps_cancellation
    async def release_slot(self, workflow_id: str, execution_id: str, limit: int) -> list[str]:
        promoted: list[bytes] = await self._release_slot(
            keys=[self.keys.slots(workflow_id), self.keys.slot_queue(workflow_id)],
            args=[execution_id, limit],
        )
        return [_text(member) for member in promoted]

    @_keeps_cancellation
    async def slot_holders(self, workflow_id: str) -> list[str]:
        members = await self._redis.smembers(self.keys.slots(workflow_id))
        return sorted(_text(member) for member in members)

    async def claim_task(self, task_id: str, worker_id: str, lease: float) -> TaskClaim:
        (claim,) = await self.claim_tasks([ClaimRequest(task_id, worker_id, lease)])
        return claim

    @_keeps_cancellation
    async def claim_tasks(self, requests: Sequence[ClaimRequest]) -> list[TaskClaim]:
        if not requests:
            return []
        now = self._clock()
        replies = await self._run_each(
            self._claim_task,
            [
                (
                    [self.keys.claim(request.task_id)],
                    [request.worker_id, repr(now), repr(now + request.lease), self._retention_ms],
                )
                for request in requests
            ],
        )
        return [_task_claim(reply) for reply in replies]

    @_keeps_cancellation
    async def cancel_tasks(self, task_ids: Sequence[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                key = self.keys.claim(task_id)
                pipe.hset(key, "cancelled", "1")
                pipe.pexpire(key, self._retention_ms)
            await pipe.execute()

    @_keeps_cancellation
    async def get_claim(self, task_id: str) -> ClaimInfo | None:
        worker, expires_at, result = await self._redis.hmget(
            self.keys.claim(task_id), ["worker", "expires_at", "result"]
        )
        if worker is None and result is None:
            return None
        return ClaimInfo(
            worker_id=_text(worker) if worker is not None else "",
            expires_at=float(_text(expires_at)) if expires_at is not None else 0.0,
            result=TaskResult.model_validate_json(result) if result is not None else None,
        )

    async def finish_task(self, result: TaskResult) -> None:
        await self.finish_tasks([result])

    @_keeps_cancellation
    async def finish_tasks(self, results: Sequence[TaskResult]) -> None:
        if not results:
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            for result in results:
                key = self.keys.claim(result.task_id)
                pipe.hset(key, "result", result.model_dump_json())
                pipe.pexpire(key, self._retention_ms)
            await pipe.execute()

    # -------------------------------------------------------------- helpers
    async def _run_each(
        self, script: AsyncScript, calls: Sequence[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """Run ``script`` once per ``(keys, args)`` in one pipeline; replies in order.

        Not a transaction: each call is atomic on its own. The EVALSHAs go out without
        the SCRIPT EXISTS check a pipeline makes first (one more round trip per batch);
        a server that lost the script (restarted, flushed) refuses them with NOSCRIPT,
        and those calls, which did nothing, run again once the script is loaded.
        """
        replies = await self._evalsha_each(script.sha, calls)
        refused = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if refused:
            script.sha = await self._redis.script_load(script.script)
            again = await self._evalsha_each(script.sha, [calls[i] for i in refused])
            for i, reply in zip(refused, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _evalsha_each(
        self, sha: str, calls: Sequence[tuple[list[str], list[Any]]]
    ) -> list[Any]:
        """One pipeline of EVALSHAs; errors come back as exceptions in the list."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)

    def _expire_ms(self, meta: ExecutionMeta) -> int:
        """The TTL to put on a finished execution's keys; 0 while it is live."""
        return self._retention_ms if meta.status in TERMINAL_EXECUTION_STATUSES else 0


def _task_claim(reply: list[bytes]) -> TaskClaim:
    """A CLAIM_TASK reply as a :class:`TaskClaim`."""
    outcome = ClaimOutcome(_text(reply[0]))
    if outcome is ClaimOutcome.FINISHED:
        return TaskClaim(outcome, TaskResult.model_validate_json(reply[1]))
    return TaskClaim(outcome)


def _node_pairs(nodes: dict[str, NodeState]) -> list[str]:
    pairs: list[str] = []
    for node_id, state in nodes.items():
        pairs += (node_id, state.model_dump_json())
    return pairs


class LazyNodes(Mapping[str, NodeState]):
    """Node states as read (JSON per node), each decoded the first time it is looked at.

    A transition looks at the nodes its event touches, not at every node of the
    execution: decoding all of them made a step's cost grow with the workflow's size.
    """

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Mapping[bytes | str, bytes | str]) -> None:
        self._raw = {_text(node_id): data for node_id, data in raw.items()}
        self._decoded: dict[str, NodeState] = {}

    def __getitem__(self, node_id: str) -> NodeState:
        state = self._decoded.get(node_id)
        if state is None:
            state = NodeState.model_validate_json(self._raw[node_id])
            self._decoded[node_id] = state
        return state

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._raw


def _decode_nodes(raw: dict[bytes | str, bytes | str]) -> dict[str, NodeState]:
    return {_text(node_id): NodeState.model_validate_json(data) for node_id, data in raw.items()}


def _text(value: object) -> str:
    """A string reply (bytes unless the client decodes responses)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"unexpected Redis reply {value!r:.100}")

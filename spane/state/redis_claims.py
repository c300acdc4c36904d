"""Task claims, execution slots, start keys and cron cursors of the Redis state store.

:class:`RedisClaims` is the part of :class:`~spane.state.redis.RedisStateStore` that
coordinates processes rather than storing executions: which worker runs a task attempt
(``CLAIM_TASK``, renewed as a lease, its result kept ``retention`` seconds), which
executions hold a workflow's ``max_executions`` slots (``ACQUIRE_SLOT`` /
``RELEASE_SLOT``), which execution an idempotency key started, and how far each cron
schedule has fired. Each call is one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.commands.core import AsyncScript

from spane.schemas.claims import ClaimInfo
from spane.schemas.messages import TaskResult
from spane.state import redis_scripts
from spane.state.base import ClaimOutcome, ClaimRequest, TaskClaim
from spane.state.keys import RedisKeys
from spane.state.redis_calls import ScriptCall, keeps_cancellation, run_each
from spane.state.redis_codec import claim_info, task_claim, text
from spane.state.redis_connect import AnyRedis

_Script = Callable[..., Any]


class RedisClaims:
    """Claims, slots, start keys and cron cursors on ``redis`` under ``keys``."""

    def __init__(
        self, redis: AnyRedis, keys: RedisKeys, retention_ms: int, clock: Callable[[], float]
    ) -> None:
        self.keys = keys
        self._redis = redis
        self._retention_ms = retention_ms
        self._clock = clock
        register = redis.register_script
        self._claim_task: AsyncScript = register(redis_scripts.CLAIM_TASK)
        self._acquire_slot: _Script = register(redis_scripts.ACQUIRE_SLOT)
        self._release_slot: _Script = register(redis_scripts.RELEASE_SLOT)

    # ------------------------------------------------ idempotency and cron
    @keeps_cancellation
    async def claim_start_key(self, scope: str, key: str, execution_id: str) -> str:
        previous: bool | str | bytes | None = await self._redis.set(
            self.keys.start(scope, key),
            execution_id,
            nx=True,
            get=True,
            px=self._retention_ms,
        )
        return execution_id if previous is None else text(previous)

    @keeps_cancellation
    async def cron_cursors(self, keys: Sequence[str]) -> dict[str, float]:
        if not keys:
            return {}
        scores = await self._redis.zmscore(self.keys.cron, list(keys))
        return {key: float(s) for key, s in zip(keys, scores, strict=True) if s is not None}

    @keeps_cancellation
    async def advance_cron_cursors(self, ticks: Mapping[str, float]) -> None:
        if ticks:  # GT: a cursor only moves forward
            await self._redis.zadd(self.keys.cron, dict(ticks), gt=True)

    # ---------------------------------------------------------------- slots
    @keeps_cancellation
    async def acquire_slot(self, workflow_id: str, execution_id: str, limit: int) -> bool:
        held = await self._acquire_slot(
            keys=[self.keys.slots(workflow_id), self.keys.slot_queue(workflow_id)],
            args=[execution_id, limit],
        )
        return int(held) == 1

    @keeps_cancellation
    async def release_slot(self, workflow_id: str, execution_id: str, limit: int) -> list[str]:
        promoted: list[bytes] = await self._release_slot(
            keys=[self.keys.slots(workflow_id), self.keys.slot_queue(workflow_id)],
            args=[execution_id, limit],
        )
        return [text(member) for member in promoted]

    @keeps_cancellation
    async def slot_holders(self, workflow_id: str) -> list[str]:
        members = await self._redis.smembers(self.keys.slots(workflow_id))
        return sorted(text(member) for member in members)

    # --------------------------------------------------------- task claims
    @keeps_cancellation
    async def claim_tasks(self, requests: Sequence[ClaimRequest]) -> list[TaskClaim]:
        if not requests:
            return []
        now = self._clock()
        # a task id that is not its attempt's is UNKNOWN without asking Redis (on a
        # cluster its claim and the execution's nodes would not even share a slot)
        named = [i for i, request in enumerate(requests) if request.names_its_attempt]
        replies = await run_each(
            self._redis,
            self._claim_task,
            [self._claim_call(requests[i], now) for i in named],
        )
        claims = [TaskClaim(ClaimOutcome.UNKNOWN)] * len(requests)
        for i, reply in zip(named, replies, strict=True):
            claims[i] = task_claim(reply)
        return claims

    def _claim_call(self, request: ClaimRequest, now: float) -> ScriptCall:
        """Keys and arguments of CLAIM_TASK (with the attempt check when it names one)."""
        keys = [self.keys.claim(request.task_id)]
        args: list[Any] = [request.worker_id, repr(now), repr(now + request.lease)]
        args.append(self._retention_ms)
        ref = request.attempt
        if ref is not None:
            keys.append(self.keys.execution(ref.execution_id).nodes)
            args += (ref.node_id, ref.attempt)
        return keys, args

    @keeps_cancellation
    async def cancel_tasks(self, task_ids: Sequence[str]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                key = self.keys.claim(task_id)
                pipe.hset(key, "cancelled", "1")
                pipe.pexpire(key, self._retention_ms)
            await pipe.execute()

    @keeps_cancellation
    async def get_claim(self, task_id: str) -> ClaimInfo | None:
        worker, expires_at, result = await self._redis.hmget(
            self.keys.claim(task_id), ["worker", "expires_at", "result"]
        )
        return claim_info(worker, expires_at, result)

    @keeps_cancellation
    async def finish_tasks(self, results: Sequence[TaskResult]) -> None:
        if not results:
            return
        # One transaction on a server; on a cluster the claims' slots differ (each
        # result's two commands still go to one node, in order).
        async with self._redis.pipeline(transaction=not self.keys.cluster) as pipe:
            for result in results:
                key = self.keys.claim(result.task_id)
                pipe.hset(key, "result", result.model_dump_json())
                pipe.pexpire(key, self._retention_ms)
            await pipe.execute()

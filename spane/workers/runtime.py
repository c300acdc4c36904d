"""The worker runtime: consume task messages of one pool, run them, report results.

Per task: claim its id in the state store (a redelivered attempt that already finished
re-publishes the stored result instead of running again), run the handler with a
:class:`TaskContext`, store the result, publish it to the orchestrator. Both ends are
batched: the deliveries of a batch that get a slot are claimed in one round trip, and
finished results are stored (one round trip) then published (one batch) together. The
task message is acked once claimed, and the orchestrator's per-attempt timeout covers a
worker that dies mid-task. The slots are :class:`~spane.workers.admission.Slots`; results
are built and flushed by :mod:`spane.workers.results`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from spane.bus.base import Bus, Delivery, Subscription
from spane.errors import TaskError, TaskNotFoundError
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES
from spane.observability import tracing
from spane.observability.logs import log_context
from spane.schemas.messages import TaskHeartbeat, TaskMessage, TaskResult
from spane.state.base import AttemptRef, ClaimOutcome, ClaimRequest, StateStore
from spane.workers.admission import Slots, WorkerStoppingError
from spane.workers.context import TaskContext
from spane.workers.http_pool import HttpPool
from spane.workers.registry import TaskHandler, TaskRegistry, default_registry
from spane.workers.results import (
    ResultFlusher,
    failed_result,
    failure_from,
    output_problem,
    to_json_value,
)
from spane.workers.secrets import SecretProvider, default_secret_provider, resolve_secrets
from spane.workers.threads import TaskThreads

if TYPE_CHECKING:
    from spane.observability.metrics import Metrics

log = logging.getLogger("spane.worker")

DEFAULT_LEASE = 10.0
RECENT_CANCELS = 10_000
SHUTDOWN_GRACE = 30.0


def _attempt_of(task: TaskMessage) -> AttemptRef:
    """The attempt a task message names; its claim succeeds only if that attempt runs."""
    return AttemptRef(task.execution_id, task.node_id, task.attempt)


def _handler(registry: TaskRegistry, task: TaskMessage) -> TaskHandler:
    """The registered handler of a function or custom task; TaskNotFoundError if none."""
    if task.type == "function":
        return registry.function(task.function or "")
    return registry.handler_for_type(task.type)


def new_worker_id(pool: str) -> str:
    return f"{pool}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs the tasks of one pool: ``task_type`` tasks (default: the type named like the
    pool: ``function``, ``http`` or a custom type) from the queue of ``pool``."""

    def __init__(
        self,
        bus: Bus,
        state: StateStore,
        *,
        pool: str,
        task_type: str | None = None,
        registry: TaskRegistry | None = None,
        concurrency: int = 10,
        worker_id: str | None = None,
        secrets: SecretProvider | None = None,
        lease: float = DEFAULT_LEASE,
        max_output_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.bus = bus
        self.state = state
        self.pool = pool
        self.task_type = task_type or pool
        self.metrics = metrics
        """Where this worker's metrics go (None: nowhere, at no cost)."""
        self.registry = registry or default_registry
        self.concurrency = concurrency
        self.worker_id = worker_id or new_worker_id(pool)
        self.secrets = secrets or default_secret_provider()
        self.lease = lease
        self.max_output_bytes = max_output_bytes
        self.clock = clock
        self._slots = Slots(concurrency)
        self._running: dict[str, tuple[asyncio.Task[None], TaskContext]] = {}
        self._results = ResultFlusher(state, bus)
        """Finished results, stored then published in batches."""
        self._executor: TaskThreads | None = None
        self._http: HttpPool | None = None
        self._subscriptions: list[Subscription] = []
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        """Recently cancelled task ids: a cancel that arrives while the claim is in
        flight still stops the task."""
        self._renewer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.task_type == "http":
            self._http = HttpPool()
            await self._http.__aenter__()
        else:
            # daemon threads: a sync task past its timeout is abandoned, never waited for
            self._executor = TaskThreads(thread_name_prefix=f"spane-{self.pool}")
        self._renewer = asyncio.create_task(self._renew_claims(), name=f"spane-renew-{self.pool}")
        self._subscriptions.append(await self.bus.subscribe_cancellations(self._on_cancel))
        self._subscriptions.append(
            await self.bus.consume_tasks(self.pool, self._on_batch, prefetch=self.concurrency)
        )

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop taking tasks, let running ones finish (up to ``grace``), then close."""
        self._slots.stop()
        for subscription in reversed(self._subscriptions):
            await subscription.stop()
        self._subscriptions.clear()
        running = [task for task, _ in self._running.values()]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            async with asyncio.timeout(grace):  # the flush retries while a server is down
                await self._results.drain()  # a batch it took may still be on its way
        except TimeoutError:
            log.warning(
                "stopping without publishing every result (%.3g s); the orchestrator's "
                "liveness check delivers stored ones and runs the others again",
                grace,
            )
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        if self._http is not None:
            await self._http.__aexit__(None, None, None)
            self._http = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # ------------------------------------------------------------ consuming
    async def _on_batch(self, deliveries: Sequence[Delivery[TaskMessage]]) -> None:
        """Give each new delivery a slot, claim those in one round trip, start them.

        When the pool is full, the deliveries admitted so far are claimed and started
        before waiting for a slot, so a full pool never delays them; and since
        :meth:`Slots.take` raises only on that slow path, nothing admitted is left
        unclaimed when a stop hands the rest of the batch back.
        """
        admitted: dict[str, TaskMessage] = {}
        for delivery in deliveries:
            task = delivery.message
            if task.task_id in self._running or self._results.finishing(task.task_id):
                continue  # a duplicate delivery of an attempt running or finished here
            if task.task_id in admitted:
                continue
            if admitted and not self._slots.free():
                await self._claim_and_start(list(admitted.values()))
                admitted.clear()
            await self._slots.take(self.worker_id)
            admitted[task.task_id] = task
        if admitted:
            await self._claim_and_start(list(admitted.values()))

    async def _claim_and_start(self, tasks: Sequence[TaskMessage]) -> None:
        """Claim tasks that each hold a slot; run the claimed ones, free the others' slots."""
        requests = [
            ClaimRequest(task.task_id, self.worker_id, self.lease, attempt=_attempt_of(task))
            for task in tasks
        ]
        try:
            claims = await self.state.claim_tasks(requests)
        except BaseException:
            for _ in tasks:  # none started; the batch is redelivered
                self._slots.release()
            raise
        for task, claim in zip(tasks, claims, strict=True):
            outcome = claim.outcome
            if outcome is ClaimOutcome.CLAIMED and task.task_id in self._cancelled:
                outcome = ClaimOutcome.CANCELLED  # the cancel overtook the claim
            if outcome is ClaimOutcome.CLAIMED:
                context = self._context(task)
                runner = asyncio.create_task(self._run(task, context), name=task.task_id)
                self._running[task.task_id] = (runner, context)
                continue
            self._slots.release()
            if outcome is ClaimOutcome.UNKNOWN:
                log.warning(
                    "task %s names no running attempt (forged, or superseded); not run",
                    task.task_id,
                )
            if outcome is ClaimOutcome.FINISHED and claim.result is not None:
                self._results.queue(claim.result, stored=True)

    def _context(self, task: TaskMessage) -> TaskContext:
        deadline = self.clock() + task.timeout if task.timeout else None
        logger = logging.LoggerAdapter(
            logging.getLogger(f"spane.task.{task.node_id}"),
            {"execution_id": task.execution_id, "node_id": task.node_id, "attempt": task.attempt},
        )

        async def heartbeat(details: Any) -> None:
            await self.state.claim_tasks([ClaimRequest(task.task_id, self.worker_id, self.lease)])
            beat = TaskHeartbeat(
                task_id=task.task_id,
                execution_id=task.execution_id,
                node_id=task.node_id,
                attempt=task.attempt,
                details=details,
            )
            await self.bus.publish_results([beat])

        return TaskContext(
            execution_id=task.execution_id,
            workflow_id=task.workflow_id,
            node_id=task.node_id,
            attempt=task.attempt,
            idempotency_key=task.task_id,
            deadline=deadline,
            logger=logger,
            pool=self.pool,
            worker_id=self.worker_id,
            _heartbeat=heartbeat,
            _loop=asyncio.get_running_loop(),
        )

    async def _on_cancel(self, task_id: str) -> None:
        self._cancelled[task_id] = None
        while len(self._cancelled) > RECENT_CANCELS:
            self._cancelled.popitem(last=False)
        entry = self._running.get(task_id)
        if entry is None:
            return
        runner, context = entry
        context.cancelled.set()
        runner.cancel()

    async def _renew_claims(self) -> None:
        """Keep this worker's claims alive: the orchestrator's liveness check treats a
        claim that stops being renewed as a dead worker and runs the attempt again."""
        while True:
            await asyncio.sleep(self.lease / 3)
            requests = [
                ClaimRequest(task_id, self.worker_id, self.lease) for task_id in self._running
            ]
            try:
                if requests:
                    await self.state.claim_tasks(requests)
            except Exception:
                log.exception("renewing task claims failed; retrying")

    # -------------------------------------------------------------- running
    async def _run(self, task: TaskMessage, context: TaskContext) -> None:
        with (
            log_context(task.execution_id, task.node_id, task.attempt),
            tracing.running(task) as run,
        ):
            began = self._began(task)
            outcome = "cancelled"
            try:
                result = await self._result_of(task, context)
                outcome = "succeeded" if result.ok else "failed"
            except asyncio.CancelledError:
                log.info("task %s cancelled", task.task_id)
                return
            finally:
                self._running.pop(task.task_id, None)
                self._slots.release()
                if self.metrics is not None:
                    self.metrics.record_attempt(task, outcome, time.perf_counter() - began)
            self._results.queue(run.finish(result))  # carries the attempt's span, if tracing

    def _began(self, task: TaskMessage) -> float:
        """Record the task's queue wait; the start of its run (perf counter)."""
        if self.metrics is None:
            return 0.0
        self.metrics.record_task_start(task, self.pool, self.clock())
        return time.perf_counter()

    async def _result_of(self, task: TaskMessage, context: TaskContext) -> TaskResult:
        try:
            output = to_json_value(await self._execute(task, context))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            tracing.record_exception(exc)
            if not isinstance(exc, TaskError):
                log.warning(
                    "task %s raised %s: %s", task.task_id, type(exc).__name__, exc, exc_info=exc
                )
            return failed_result(task, failure_from(exc))
        problem = output_problem(output, self.max_output_bytes)
        if problem is not None:
            return failed_result(task, problem)
        return TaskResult(
            task_id=task.task_id,
            execution_id=task.execution_id,
            node_id=task.node_id,
            attempt=task.attempt,
            ok=True,
            output=output,
        )

    async def _execute(self, task: TaskMessage, context: TaskContext) -> Any:
        if task.type != self.task_type:
            reason = f"got a {task.type!r} task but runs {self.task_type!r} tasks"
            raise self._refuse(task, "WrongTaskType", f"{reason}; give each task type its own pool")
        if self.task_type == "http":
            assert self._http is not None
            return await self._http.run(task, self.secrets)
        try:
            handler = _handler(self.registry, task)
        except TaskNotFoundError as exc:
            raise self._refuse(task, "TaskNotFoundError", str(exc)) from None
        data = resolve_secrets(task.input, self.secrets) if task.input_template else task.input
        if task.type == "function":
            return await handler.call(data, None, context, self._executor)
        config = resolve_secrets(task.config or {}, self.secrets)
        return await handler.call(data, config, context, self._executor)

    def _refuse(self, task: TaskMessage, kind: str, reason: str) -> TaskError:
        """A task this worker cannot run fails at once (a retry would land on the same
        pool's workers, which run the same code), and the worker says so in its log."""
        message = f"worker {self.worker_id} (pool {self.pool!r}): {reason}"
        log.error("task %s not run: %s", task.task_id, message)
        details = {"function": task.function, "pool": self.pool, "worker": self.worker_id}
        return TaskError(message, non_retryable=True, type=kind, details=details)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def consuming(self) -> bool:
        """Whether this worker takes tasks (started, not stopping)."""
        return bool(self._subscriptions) and not self._slots.stopping


__all__ = ["Worker", "WorkerStoppingError", "failure_from", "new_worker_id"]

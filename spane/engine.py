"""The :class:`Engine`: SPANE in one process (embedded), or a client of a deployment.

Embedded (the default)::

    async with Engine() as engine:
        await engine.register(load_workflow_file("order.yaml"))
        result = await engine.run("order-fulfilment", {"total": 42})

The engine wires an :class:`~spane.orchestrator.service.OrchestratorService` and one
:class:`~spane.workers.runtime.Worker` per pool (function, http, every registered custom
type, and every pool a registered workflow names) to in-memory stores and bus. Given
other adapters it runs the same code on them.

Its parts: the workers (:mod:`spane.engine_pools`), the callers of :meth:`Engine.wait`
(:mod:`spane.engine_waiters`), and the operations on the stores and bus behind its
queries, dead letters, pool statistics and readiness (:mod:`spane.engine_operations`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spane import engine_operations as operations
from spane import recovery
from spane.bus.base import Bus, EventHandler, QueueStats, Reply, Subscription
from spane.bus.dead_letters import DeadLetter
from spane.bus.memory import MemoryBus
from spane.compiler.compile import compile_plan
from spane.config import Settings
from spane.core.explain import Explanation, explain
from spane.engine_pools import WorkerPools
from spane.engine_waiters import Waiters
from spane.errors import ExecutionNotFoundError, InvalidInputError
from spane.expressions.limits import check_value
from spane.observability import tracing
from spane.observability.tracing_setup import configure as configure_tracing
from spane.orchestrator.plan_cache import PlanCache
from spane.orchestrator.service import OrchestratorService
from spane.process import tune_gc
from spane.schemas.messages import (
    CancelCommand,
    InboxMessage,
    PauseCommand,
    ResumeCommand,
    SignalCommand,
    StartExecution,
)
from spane.schemas.state import ErrorInfo, ExecutionMeta, ExecutionStatus, NodeState
from spane.schemas.workflow import WorkflowSpec
from spane.state.base import DefinitionStore, StateStore, WorkflowRecord
from spane.state.memory import MemoryDefinitionStore, MemoryStateStore
from spane.workers.registry import TaskRegistry, default_registry
from spane.workers.runtime import Worker
from spane.workers.secrets import SecretProvider


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    execution_id: str
    status: ExecutionStatus
    output: Any
    error: ErrorInfo | None

    @property
    def succeeded(self) -> bool:
        return self.status == ExecutionStatus.SUCCEEDED


@dataclass(frozen=True, slots=True)
class ExecutionSnapshot:
    meta: ExecutionMeta
    nodes: dict[str, NodeState]


class Engine:
    """Orchestrator + worker pools + stores, started and stopped together."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        bus: Bus | None = None,
        state: StateStore | None = None,
        definitions: DefinitionStore | None = None,
        registry: TaskRegistry | None = None,
        pools: Sequence[str] | None = None,
        run_orchestrator: bool = True,
        secrets: SecretProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or Settings()
        self.bus: Bus = bus or MemoryBus(max_value_bytes=self.settings.max_value_bytes)
        self.state: StateStore = state or MemoryStateStore(clock)
        self.definitions: DefinitionStore = definitions or MemoryDefinitionStore()
        self.registry = registry or default_registry
        self.clock = clock
        self.plans = PlanCache(self.definitions)
        self._pools = WorkerPools(
            pools, registry=self.registry, settings=self.settings, secrets=secrets, clock=clock
        )
        self._run_orchestrator = run_orchestrator
        self.orchestrator: OrchestratorService | None = None
        self._waiters = Waiters()
        self._subscriptions: list[Subscription] = []
        self._opened = False

    @property
    def workers(self) -> list[Worker]:
        """The workers running in this engine, one per pool served."""
        return self._pools.workers

    # ------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> Engine:
        await self.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self.settings.gc_tuning:
            tune_gc()
        configure_tracing(  # only if OTEL_* asks for it; a process's first call wins
            "spane-embedded" if self._run_orchestrator else "spane-client",
            namespace=self.settings.namespace,
            messaging_system="memory" if isinstance(self.bus, MemoryBus) else "rabbitmq",
        )
        await self.bus.connect()
        await self.state.connect()
        await self.definitions.connect()
        self._opened = True
        for pattern in ("execution.#", "child.#", "iteration.#"):  # every execution's end
            self._subscriptions.append(
                await self.bus.subscribe_events(pattern, self._waiters.on_event)
            )
        if self._run_orchestrator:
            self.orchestrator = OrchestratorService(
                self.bus,
                self.state,
                self.definitions,
                plans=self.plans,
                options=self.settings.core_options(),
                prefetch=self.settings.prefetch,
                clock=self.clock,
                max_value_bytes=self.settings.max_value_bytes,
            )
            await self.orchestrator.start()
        await self._pools.start(self.bus, self.state)

    def pool_names(self) -> list[str]:
        """The pools (queues) this engine's workers consume."""
        return self._pools.names()

    async def close(self) -> None:
        await self._pools.stop(grace=1.0)
        if self.orchestrator is not None:
            await self.orchestrator.stop()
            self.orchestrator = None
        for subscription in self._subscriptions:
            await subscription.stop()
        self._subscriptions.clear()
        await self.bus.close()
        await self.state.close()
        await self.definitions.close()
        self._opened = False

    # ---------------------------------------------------------- definitions
    async def register(self, workflow: WorkflowSpec | Mapping[str, Any] | str) -> WorkflowRecord:
        """Validate and store a definition; identical content keeps its version."""
        spec = operations.workflow_spec(workflow)
        plan = compile_plan(spec)
        await self._pools.serve_pools_of(spec)
        record = await self.definitions.register(spec, plan.checksum, self.clock())
        self.plans.forget_latest(record.workflow_id)
        if self.orchestrator is not None:
            self.orchestrator.invalidate_triggers()
        return record

    async def publish_trigger(
        self, routing_key: str, body: Any, *, idempotency_key: str | None = None
    ) -> None:
        """Publish a trigger event, as any producer on ``spane.triggers`` would."""
        headers = {"spane-idempotency-key": idempotency_key} if idempotency_key else None
        with tracing.trigger_headers(routing_key, headers) as headers:  # + traceparent
            await self.bus.publish_trigger(routing_key, body, headers=headers)

    # ------------------------------------------------------------ executions
    async def start(
        self,
        workflow_id: str,
        input: Any = None,
        *,
        version: int | None = None,
        idempotency_key: str | None = None,
        priority: int = 0,
        execution_id: str | None = None,
    ) -> str:
        """Start an execution; returns its id once the start is durable."""
        if self._pools.workers:
            plan = await self.plans.get(workflow_id, version)
            await self._pools.serve_pools_of(plan.spec)
            self._pools.check_tasks_registered(plan)
        problem = check_value(
            input, what="execution input", schema=None, max_bytes=self.settings.max_value_bytes
        )
        if problem is not None:
            raise InvalidInputError(problem)
        message = StartExecution(
            execution_id=execution_id or uuid.uuid4().hex,
            workflow_id=workflow_id,
            version=version,
            input=input,
            idempotency_key=idempotency_key,
            priority=priority,
        )
        # the caller's trace goes on, if tracing; refusals as WorkflowNotFound/InvalidInput
        return await recovery.send_start(self.bus.request, message)

    async def wait(self, execution_id: str, timeout: float | None = None) -> ExecutionResult:
        """Wait until the execution is in a terminal status."""
        meta = await self._waiters.wait(self.state, execution_id, timeout)
        return ExecutionResult(meta.id, meta.status, meta.output, meta.error)

    async def run(
        self,
        workflow_id: str,
        input: Any = None,
        *,
        timeout: float | None = None,
        **options: Any,
    ) -> ExecutionResult:
        """Start an execution and wait for its result."""
        execution_id = await self.start(workflow_id, input, **options)
        return await self.wait(execution_id, timeout)

    async def status(self, execution_id: str) -> ExecutionSnapshot:
        meta = await self.state.get_meta(execution_id)
        if meta is None:
            raise ExecutionNotFoundError(f"execution {execution_id!r} not found")
        return ExecutionSnapshot(meta, await self.state.get_nodes(execution_id))

    # ------------------------------------------------------------- commands
    async def _command(self, message: InboxMessage) -> Reply:
        return await operations.send_command(self.bus.request, message)

    async def signal(self, execution_id: str, name: str, data: Any = None) -> None:
        """Deliver a signal to the nodes of an execution waiting for ``name``."""
        await self._command(SignalCommand(execution_id=execution_id, name=name, data=data))

    async def pause(self, execution_id: str) -> None:
        await self._command(PauseCommand(execution_id=execution_id))

    async def resume(self, execution_id: str) -> None:
        await self._command(ResumeCommand(execution_id=execution_id))

    async def cancel(self, execution_id: str, reason: str | None = None) -> None:
        await self._command(CancelCommand(execution_id=execution_id, reason=reason))

    async def retry(self, execution_id: str) -> None:
        """Run a failed, timed-out or cancelled execution again (:mod:`spane.recovery`)."""
        await recovery.retry(self._command, self.definitions, execution_id)

    async def replay(
        self, execution_id: str, from_node: str, input: Any = recovery.SAME_INPUT
    ) -> str:
        """A new execution of ``from_node`` on, reusing the other nodes' outputs."""
        return await recovery.replay(self, execution_id, from_node, input)

    async def subscribe(self, pattern: str, handler: EventHandler) -> Subscription:
        """Receive lifecycle events whose routing key matches ``pattern``."""
        subscription = await self.bus.subscribe_events(pattern, handler)
        self._subscriptions.append(subscription)
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Stop a subscription made with :meth:`subscribe` (before the engine closes)."""
        await subscription.stop()
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    # -------------------------------------------------------------- queries
    async def get_workflow(self, workflow_id: str, version: int | None = None) -> WorkflowRecord:
        """A registered definition, the latest version unless ``version`` is given.

        Raises :class:`~spane.errors.WorkflowNotFoundError`."""
        return await self.definitions.get(workflow_id, version)

    async def list_workflows(self) -> list[WorkflowRecord]:
        """The latest version of every registered workflow, sorted by id."""
        return await self.definitions.list_workflows()

    async def list_executions(
        self, workflow_id: str | None = None, limit: int = 100
    ) -> list[ExecutionMeta]:
        """Executions in the runtime state store (finished ones until their retention
        ends), newest first."""
        return await self.state.list_executions(workflow_id, limit)

    async def describe(self, execution_id: str) -> ExecutionSnapshot:
        """:meth:`status`, falling back to the archive for an execution whose runtime
        state has expired. Raises :class:`~spane.errors.ExecutionNotFoundError`."""
        meta = await self.state.get_meta(execution_id)
        if meta is not None:
            return ExecutionSnapshot(meta, await self.state.get_nodes(execution_id))
        archived = await operations.archived_execution(self.definitions, execution_id)
        if archived is None:
            raise ExecutionNotFoundError(f"execution {execution_id!r} not found")
        return ExecutionSnapshot(*archived)

    async def explain(self, execution_id: str) -> Explanation:
        """What every unfinished node of the execution waits on (see
        :func:`spane.core.explain.explain`). Raises
        :class:`~spane.errors.ExecutionNotFoundError`."""
        snapshot = await self.describe(execution_id)
        meta = snapshot.meta
        plan = await self.plans.get(meta.workflow_id, meta.version, meta.body)
        consumers = self._pools.consumers()  # embedded: the pools here are all there are
        return explain(plan, meta, snapshot.nodes, self.clock(), pool_consumers=consumers)

    # --------------------------------------------------------- dead letters
    async def list_dead_letters(
        self, limit: int = 100, *, before: tuple[float, str] | None = None
    ) -> list[dict[str, Any]]:
        """Stored dead letters, newest first (``before``: the position ``(dead_at, id)``
        of the last entry of the previous page)."""
        return await self.definitions.list_dead_letters(limit, before=before)

    async def get_dead_letter(self, entry_id: str) -> dict[str, Any]:
        """One stored dead letter. Raises :class:`~spane.errors.NotFoundError`."""
        return await operations.get_dead_letter(self.definitions, entry_id)

    async def redrive_dead_letter(self, entry_id: str) -> DeadLetter:
        """Re-publish a dead letter to its original exchange and routing key, then forget
        it (kept if the publication fails). Two redrives of one entry at once may both
        publish it; consumers deduplicate by message and event ids."""
        return await operations.redrive_dead_letter(self.bus, self.definitions, entry_id)

    async def drop_dead_letter(self, entry_id: str) -> None:
        """Forget a dead letter. Raises :class:`~spane.errors.NotFoundError`."""
        await operations.drop_dead_letter(self.definitions, entry_id)

    async def pool_stats(self) -> dict[str, QueueStats]:
        """Ready messages and consumers of every pool: ``function``, ``http``, this
        registry's custom types, the pools served here and those registered workflows'
        latest versions name (pools of older versions still running are not listed)."""
        names = {"function", "http", *self.registry.task_types, *self.pool_names()}
        return await operations.pool_stats(self.bus, self.definitions, names)

    @property
    def is_open(self) -> bool:
        """Between :meth:`open` and :meth:`close`."""
        return self._opened

    async def check_backends(self, timeout: float = 2.0) -> dict[str, str | None]:
        """Readiness of each backend: ``None`` when usable, else why not.

        The bus reports its connection when it knows it (RabbitMQ); the stores answer
        a cheap read within ``timeout`` seconds."""
        parts = (self.bus, self.state, self.definitions)
        return await operations.check_backends(self.is_open, *parts, timeout)

"""The :class:`Engine`: SPANE in one process (embedded), or a client of a deployment.

Embedded (the default)::

    async with Engine() as engine:
        await engine.register(load_workflow_file("order.yaml"))
        result = await engine.run("order-fulfilment", {"total": 42})

The engine wires an :class:`~spane.orchestrator.service.OrchestratorService` and one
:class:`~spane.workers.runtime.Worker` per pool (function, http, every registered custom
type, and every pool a registered workflow names) to in-memory stores and bus. Given
other adapters it runs the same code on them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spane import recovery
from spane.bus.base import Bus, EventHandler, QueueStats, Reply, Subscription
from spane.bus.dead_letters import DeadLetter
from spane.bus.memory import MemoryBus
from spane.compiler.compile import compile_plan
from spane.compiler.plan import NodeKind, Plan
from spane.config import Settings
from spane.core.explain import Explanation, explain
from spane.errors import (
    CommandRejectedError,
    ExecutionNotFoundError,
    InvalidInputError,
    InvalidMessageError,
    NotFoundError,
    TaskNotFoundError,
    WorkflowNotFoundError,
)
from spane.expressions.limits import check_value
from spane.observability import tracing
from spane.observability.tracing_setup import configure as configure_tracing
from spane.orchestrator.plan_cache import PlanCache
from spane.orchestrator.service import OrchestratorService
from spane.process import tune_gc
from spane.schemas.events import LifecycleEvent
from spane.schemas.loader import load_workflow_file, spec_from_data
from spane.schemas.messages import (
    CancelCommand,
    InboxMessage,
    PauseCommand,
    ResumeCommand,
    SignalCommand,
    StartExecution,
)
from spane.schemas.pools import PoolSpec, parse_pool_spec, workflow_pools
from spane.schemas.state import (
    TERMINAL_EXECUTION_STATUSES,
    ErrorInfo,
    ExecutionMeta,
    ExecutionStatus,
    NodeState,
)
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
        self._pools = None if pools is None else [parse_pool_spec(pool) for pool in pools]
        """Explicit pools (``TYPE`` or ``TYPE:POOL`` each), or None: every task type this
        registry can run, on its own pool and on every pool a registered workflow names."""
        self._served: list[PoolSpec] = []
        self._secrets = secrets
        self._run_orchestrator = run_orchestrator
        self.orchestrator: OrchestratorService | None = None
        self.workers: list[Worker] = []
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._subscriptions: list[Subscription] = []
        self._opened = False

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
                await self.bus.subscribe_events(pattern, self._on_execution_event)
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
        types = ["function", "http", *sorted(self.registry.task_types)]
        for spec in self._pools if self._pools is not None else map(PoolSpec, types, types):
            await self._serve(spec)

    async def _serve(self, spec: PoolSpec) -> None:
        self._served.append(spec)
        worker = Worker(
            self.bus,
            self.state,
            pool=spec.pool,
            task_type=spec.task_type,
            registry=self.registry,
            concurrency=self.settings.worker_concurrency,
            secrets=self._secrets,
            lease=self.settings.task_lease,
            max_output_bytes=self.settings.max_value_bytes,
            clock=self.clock,
        )
        await worker.start()
        self.workers.append(worker)

    async def _serve_pools_of(self, spec: WorkflowSpec) -> None:
        """Automatic pools: start a worker for each pool of ``spec`` none serves yet."""
        if self._pools is not None or not self.workers:
            return
        runnable = {"function", "http", *self.registry.task_types}
        for pool in sorted(workflow_pools(spec) - set(self._served)):
            if pool.task_type in runnable:
                await self._serve(pool)

    def pool_names(self) -> list[str]:
        """The pools (queues) this engine's workers consume."""
        specs = self._served or self._pools
        if specs is None:  # automatic pools, not open yet
            return ["function", "http", *sorted(self.registry.task_types)]
        return list(dict.fromkeys(spec.pool for spec in specs))

    async def close(self) -> None:
        for worker in self.workers:
            await worker.stop(grace=1.0)
        self.workers.clear()
        self._served.clear()
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
        if isinstance(workflow, str):
            spec = load_workflow_file(workflow)
        elif isinstance(workflow, WorkflowSpec):
            spec = workflow
        else:
            spec = spec_from_data(dict(workflow))
        plan = compile_plan(spec)
        await self._serve_pools_of(spec)
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
        if self.workers:
            plan = await self.plans.get(workflow_id, version)
            await self._serve_pools_of(plan.spec)
            self._check_tasks_registered(plan)
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
        with tracing.starting(message) as message:  # the caller's trace goes on, if tracing
            reply = await self.bus.request(message)
        if not reply.get("ok"):
            error = str(reply.get("error"))
            if "not registered" in error or "has no version" in error:
                raise WorkflowNotFoundError(error)
            raise InvalidInputError(error)
        return str(reply["execution_id"])

    def _check_tasks_registered(self, plan: Plan) -> None:
        for node in plan.nodes.values():
            if node.body is not None:
                self._check_tasks_registered(node.body)
            if node.kind is not NodeKind.TASK:
                continue
            if node.type == "function":
                self.registry.function(str(getattr(node.spec, "function", "")))
            pool = PoolSpec(node.type, node.pool or node.type)
            if pool not in self._served:
                raise TaskNotFoundError(
                    f"node {node.id!r} has type {node.type!r} on pool {pool.pool!r}, but no "
                    "worker of that pool runs here; register a handler with "
                    "@spane.task_type, or give Engine(pools=...) the pool"
                )

    async def wait(self, execution_id: str, timeout: float | None = None) -> ExecutionResult:
        """Wait until the execution is in a terminal status."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(execution_id, []).append(future)
        try:
            meta = await self.state.get_meta(execution_id)
            if meta is None:
                raise ExecutionNotFoundError(f"execution {execution_id!r} not found")
            if meta.status not in TERMINAL_EXECUTION_STATUSES:
                async with asyncio.timeout(timeout):
                    await future
                meta = await self.state.get_meta(execution_id)
                assert meta is not None
        finally:
            waiters = self._waiters.get(execution_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop(execution_id, None)
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

    async def _on_execution_event(self, routing_key: str, event: LifecycleEvent) -> None:
        if event.data.get("status") not in TERMINAL_EXECUTION_STATUSES:
            return
        for future in self._waiters.get(event.subject, []):
            if not future.done():
                future.set_result(None)

    async def status(self, execution_id: str) -> ExecutionSnapshot:
        meta = await self.state.get_meta(execution_id)
        if meta is None:
            raise ExecutionNotFoundError(f"execution {execution_id!r} not found")
        return ExecutionSnapshot(meta, await self.state.get_nodes(execution_id))

    # ------------------------------------------------------------- commands
    async def _command(self, message: InboxMessage) -> Reply:
        reply = await self.bus.request(message)
        if not reply.get("ok"):
            error = str(reply.get("error"))
            if error.endswith("not found"):
                raise ExecutionNotFoundError(error)
            raise CommandRejectedError(error)
        return reply

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
        record = await self.definitions.get_archived(execution_id)
        if record is None:
            raise ExecutionNotFoundError(f"execution {execution_id!r} not found")
        fields = {k: v for k, v in record.items() if k in ExecutionMeta.model_fields}
        nodes = record.get("nodes") or {}
        return ExecutionSnapshot(
            ExecutionMeta.model_validate(fields),
            {node_id: NodeState.model_validate(node) for node_id, node in nodes.items()},
        )

    async def explain(self, execution_id: str) -> Explanation:
        """What every unfinished node of the execution waits on (see
        :func:`spane.core.explain.explain`). Raises
        :class:`~spane.errors.ExecutionNotFoundError`."""
        snapshot = await self.describe(execution_id)
        meta = snapshot.meta
        plan = await self.plans.get(meta.workflow_id, meta.version, meta.body)
        consumers: dict[str, int] | None = None
        if self.workers:  # embedded: the pools that run here are all there are
            consumers = {}
            for worker in self.workers:
                consumers[worker.pool] = consumers.get(worker.pool, 0) + 1
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
        entry = await self.definitions.get_dead_letter(entry_id)
        if entry is None:
            raise NotFoundError(f"dead letter {entry_id!r} not found")
        return entry

    async def redrive_dead_letter(self, entry_id: str) -> DeadLetter:
        """Re-publish a dead letter to its original exchange and routing key, then forget
        it (kept if the publication fails). Two redrives of one entry at once may both
        publish it; consumers deduplicate by message and event ids."""
        try:
            entry = DeadLetter.from_record(await self.get_dead_letter(entry_id))
        except InvalidMessageError as exc:
            raise CommandRejectedError(f"cannot redrive {entry_id!r}: {exc}") from exc
        await self.bus.redrive(entry)
        await self.definitions.delete_dead_letter(entry_id)
        return entry

    async def drop_dead_letter(self, entry_id: str) -> None:
        """Forget a dead letter. Raises :class:`~spane.errors.NotFoundError`."""
        if not await self.definitions.delete_dead_letter(entry_id):
            raise NotFoundError(f"dead letter {entry_id!r} not found")

    async def pool_stats(self) -> dict[str, QueueStats]:
        """Ready messages and consumers of every pool: ``function``, ``http``, this
        registry's custom types, the pools served here and those registered workflows'
        latest versions name (pools of older versions still running are not listed)."""
        names = {"function", "http", *self.registry.task_types, *self.pool_names()}
        for record in await self.definitions.list_workflows():
            names.update(pool.pool for pool in workflow_pools(record.spec))
        return await self.bus.pool_stats(sorted(names))

    @property
    def is_open(self) -> bool:
        """Between :meth:`open` and :meth:`close`."""
        return self._opened

    async def check_backends(self, timeout: float = 2.0) -> dict[str, str | None]:
        """Readiness of each backend: ``None`` when usable, else why not.

        The bus reports its connection when it knows it (RabbitMQ); the stores answer
        a cheap read within ``timeout`` seconds."""
        checks: dict[str, str | None] = {"engine": None if self.is_open else "not open"}
        connected = getattr(self.bus, "connected", True)
        checks["bus"] = None if connected else "not connected"
        probes: dict[str, Any] = {
            "state": self.state.get_meta("spane-readiness-probe"),
            "definitions": self.definitions.list_dead_letters(limit=1),
        }
        for name, probe in probes.items():
            try:
                async with asyncio.timeout(timeout):
                    await probe
                checks[name] = None
            except Exception as exc:
                checks[name] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return checks

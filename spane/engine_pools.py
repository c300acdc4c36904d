"""The worker pools of an :class:`~spane.engine.Engine`: one
:class:`~spane.workers.runtime.Worker` per pool, started when the engine opens.

Explicit pools (``Engine(pools=["function", "function:scoring"])``) are served as given
(``pools=[]``: none, a client of a deployment). Automatic pools (``pools=None``): every
task type the registry can run, each on its own pool, and then every pool a registered
or started workflow names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from spane.bus.base import Bus
from spane.compiler.plan import NodeKind, Plan
from spane.config import Settings
from spane.errors import TaskNotFoundError
from spane.schemas.pools import PoolSpec, parse_pool_spec, workflow_pools
from spane.schemas.workflow import WorkflowSpec
from spane.state.base import StateStore
from spane.workers.registry import TaskRegistry
from spane.workers.runtime import Worker
from spane.workers.secrets import SecretProvider

__all__ = ["WorkerPools"]


class WorkerPools:
    """The workers an engine runs, and which pools they serve."""

    def __init__(
        self,
        pools: Sequence[str] | None,
        *,
        registry: TaskRegistry,
        settings: Settings,
        secrets: SecretProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.explicit = None if pools is None else [parse_pool_spec(pool) for pool in pools]
        """Explicit pools (``TYPE`` or ``TYPE:POOL`` each), or None: every task type the
        registry can run, on its own pool and on every pool a registered workflow names."""
        self.served: list[PoolSpec] = []
        self.workers: list[Worker] = []
        self._registry = registry
        self._settings = settings
        self._secrets = secrets
        self._clock = clock
        self._parts: tuple[Bus, StateStore] | None = None

    async def start(self, bus: Bus, state: StateStore) -> None:
        """Start a worker of every explicit pool, or of every task type's own pool."""
        self._parts = (bus, state)
        types = ["function", "http", *sorted(self._registry.task_types)]
        for spec in self.explicit if self.explicit is not None else map(PoolSpec, types, types):
            await self._serve(spec)

    async def _serve(self, spec: PoolSpec) -> None:
        assert self._parts is not None
        bus, state = self._parts
        self.served.append(spec)
        worker = Worker(
            bus,
            state,
            pool=spec.pool,
            task_type=spec.task_type,
            registry=self._registry,
            concurrency=self._settings.worker_concurrency,
            secrets=self._secrets,
            lease=self._settings.task_lease,
            max_output_bytes=self._settings.max_value_bytes,
            clock=self._clock,
        )
        await worker.start()
        self.workers.append(worker)

    async def serve_pools_of(self, spec: WorkflowSpec) -> None:
        """Automatic pools: start a worker for each pool of ``spec`` none serves yet."""
        if self.explicit is not None or not self.workers:
            return
        runnable = {"function", "http", *self._registry.task_types}
        for pool in sorted(workflow_pools(spec) - set(self.served)):
            if pool.task_type in runnable:
                await self._serve(pool)

    def names(self) -> list[str]:
        """The pools (queues) the workers consume."""
        specs = self.served or self.explicit
        if specs is None:  # automatic pools, not started yet
            return ["function", "http", *sorted(self._registry.task_types)]
        return list(dict.fromkeys(spec.pool for spec in specs))

    def consumers(self) -> dict[str, int] | None:
        """Workers per pool when any run here (embedded: the pools that run here are all
        there are); None for a client of a deployment, which cannot know."""
        if not self.workers:
            return None
        consumers: dict[str, int] = {}
        for worker in self.workers:
            consumers[worker.pool] = consumers.get(worker.pool, 0) + 1
        return consumers

    def check_tasks_registered(self, plan: Plan) -> None:
        """Raise :class:`~spane.errors.TaskNotFoundError` unless every task node of
        ``plan`` (loop bodies included) has a handler and a worker of its pool here."""
        for node in plan.nodes.values():
            if node.body is not None:
                self.check_tasks_registered(node.body)
            if node.kind is not NodeKind.TASK:
                continue
            if node.type == "function":
                self._registry.function(str(getattr(node.spec, "function", "")))
            pool = PoolSpec(node.type, node.pool or node.type)
            if pool not in self.served:
                raise TaskNotFoundError(
                    f"node {node.id!r} has type {node.type!r} on pool {pool.pool!r}, but no "
                    "worker of that pool runs here; register a handler with "
                    "@spane.task_type, or give Engine(pools=...) the pool"
                )

    async def stop(self, grace: float = 1.0) -> None:
        """Stop every worker (each lets its running tasks finish for up to ``grace`` s)."""
        for worker in self.workers:
            await worker.stop(grace=grace)
        self.workers.clear()
        self.served.clear()

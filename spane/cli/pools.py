"""Worker pools on the command line: ``spane worker --pool`` values, and the pool table
of ``spane status`` without an execution id.

``--pool TYPE`` serves a task type on the pool named like it (``function``, ``http``,
``image-resize``); ``--pool TYPE:POOL`` serves it on a pool that workflows name with
``pool:`` (``function:scoring``). The option repeats: one process, one consumer per pool.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from spane.backends import Backends
    from spane.bus.base import QueueStats
    from spane.config import Settings
    from spane.observability.health import Check
    from spane.observability.metrics import Metrics
    from spane.schemas.pools import PoolSpec

__all__ = ["POOL_HELP", "PoolRuntimes", "parse_pools", "pool_lines"]

log = logging.getLogger("spane.cli.main")

POOL_HELP = (
    "TYPE or TYPE:POOL, repeatable. TYPE: function, http or a custom task type; POOL: "
    "the queue to serve, as workflows name it with 'pool:' (default: TYPE). "
    "'function:scoring' runs function tasks routed to pool 'scoring'."
)


def parse_pools(values: Sequence[str]) -> list[PoolSpec]:
    """``--pool`` values -> distinct :class:`PoolSpec` in order; a bad one is a usage error."""
    from spane.schemas.pools import parse_pool_spec

    specs: list[PoolSpec] = []
    for value in values:
        try:
            spec = parse_pool_spec(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--pool") from None
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise typer.BadParameter("give at least one pool", param_hint="--pool")
    pools = [spec.pool for spec in specs]
    for spec in specs:
        if pools.count(spec.pool) > 1:
            raise typer.BadParameter(
                f"pool {spec.pool!r} is given for two task types; a pool carries one",
                param_hint="--pool",
            )
    return specs


def pool_lines(stats: Mapping[str, QueueStats]) -> list[str]:
    """The pool table: queue depth (ready messages) and consumers per pool."""
    lines = [f"{'pool':<32} {'waiting':>8} {'consumers':>9}"]
    for pool, (messages, consumers) in sorted(stats.items()):
        note = "  (no consumer)" if messages and not consumers else ""
        lines.append(f"{pool:<32} {messages:>8} {consumers:>9}{note}")
    return lines


class PoolRuntimes:
    """The worker runtimes of one ``spane worker`` process: one per ``--pool``."""

    def __init__(
        self,
        specs: Sequence[PoolSpec],
        backends: Backends,
        settings: Settings,
        concurrency: int | None,
        metrics: Metrics | None,
    ) -> None:
        from spane.workers.runtime import Worker

        self.runtimes = [
            Worker(
                backends.bus,
                backends.state,
                pool=spec.pool,
                task_type=spec.task_type,
                concurrency=concurrency or settings.worker_concurrency,
                lease=settings.task_lease,
                max_output_bytes=settings.max_value_bytes,
                metrics=metrics,
            )
            for spec in specs
        ]
        self.specs = list(specs)

    def check(self) -> Check:
        """Ready while every runtime takes tasks."""
        from spane.observability.health import flag_check

        return flag_check(lambda: all(r.consuming for r in self.runtimes), "not consuming tasks")

    async def start(self) -> None:
        for spec, runtime in zip(self.specs, self.runtimes, strict=True):
            await runtime.start()
            log.info("worker %s running (pool %s)", runtime.worker_id, spec)

    async def stop(self, grace: float) -> None:
        """Stop taking tasks everywhere; let running ones finish (up to ``grace``)."""
        import asyncio  # not at import time: `spane --help` loads no event loop machinery

        log.info("stopping: %d task(s) running", sum(r.running for r in self.runtimes))
        await asyncio.gather(*(runtime.stop(grace=grace) for runtime in self.runtimes))

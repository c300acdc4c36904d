"""Prometheus metrics of one SPANE process, in its own :class:`CollectorRegistry`.

A :class:`Metrics` object is handed to the orchestrator service and the workers (their
``metrics=`` parameter; None, the default, records nothing and costs nothing). Tests make
their own, so nothing leaks between them. Labels are bounded: workflow ids, node ids,
task types, pools, statuses, queue names; never execution or task ids.

Where each metric is measured:

- orchestrator, from the commands it carried out (:meth:`Metrics.record_outbox`, once
  per batch after the publications succeeded): executions started / finished (their
  lifecycle events; loop iterations are not counted, sub-workflow children are),
  executions in flight (started minus finished as this process saw them), retries
  (task attempts dispatched after the first, including a re-run after a lost worker);
- orchestrator, per batch: batch size and duration; timer loop: timers pending;
- worker, per attempt it runs: attempts by outcome, their duration (start -> result),
  queue wait (dispatch -> start on the worker);
- the bus, through :mod:`spane.observability.hooks`: dead letters, publish confirms.

A batch that is redelivered after its commands were carried out (a crash before the
ack) re-publishes the recorded commands, and they are counted again: the counters are
at-least-once, like the deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from spane.observability import hooks
from spane.schemas.events import LifecycleEvent
from spane.schemas.messages import TaskMessage

__all__ = ["CONTENT_TYPE", "FINISHED_STATUSES", "Metrics", "Outcome"]

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series (process-wide)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The content type of :meth:`Metrics.exposition`: the Prometheus text format every
Prometheus version reads (what ``prometheus_client`` answers a plain scrape with)."""

FINISHED_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})
_EVENT_PREFIX = "io.spane.execution."
_COUNTED_KEYS = ("execution.", "child.")
"""Routing-key prefixes of the executions counted (top-level and sub-workflow children;
not loop iterations, which carry their parent's workflow id)."""

Outcome = str
"""How a worker's attempt ended: ``succeeded``, ``failed`` or ``cancelled``."""

DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
WAIT_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
)  # fmt: skip
FAST_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    """Every SPANE metric, registered in one registry (``self.registry``)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        if process_metrics:  # process_* (CPU, RSS, fds) and python_info, read at scrape time
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        r = self.registry
        self.executions_started = Counter(
            "spane_executions_started_total",
            "Executions started (top-level and sub-workflow children), by workflow.",
            ["workflow"],
            registry=r,
        )
        self.executions_finished = Counter(
            "spane_executions_finished_total",
            "Executions that reached a terminal status, by workflow and status.",
            ["workflow", "status"],
            registry=r,
        )
        self.executions_in_flight = Gauge(
            "spane_executions_in_flight",
            "Executions started minus finished as this orchestrator process saw them "
            "(sum over replicas for the deployment; a restart resets it).",
            registry=r,
        )
        self.retries = Counter(
            "spane_retries_total",
            "Task attempts dispatched after the first (retries and lost-worker re-runs).",
            ["workflow", "node"],
            registry=r,
        )
        self.batch_size = Histogram(
            "spane_orchestrator_batch_size",
            "Inbox messages per orchestrator micro-batch.",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            "spane_orchestrator_batch_duration_seconds",
            "Time to handle one inbox micro-batch (load, decide, commit, publish, reply).",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.timers_pending = Gauge(
            "spane_timers_pending",
            "Due timers the timer loop claimed on its last look (0: nothing was due; "
            "the loop's batch limit means a backlog).",
            registry=r,
        )
        self.event_loop_lag = Gauge(
            "spane_event_loop_lag_seconds",
            "How late the event loop ran a timed wake-up, last measured (health server).",
            registry=r,
        )
        self._worker_metrics(r)
        self._bus_metrics(r)

    def _worker_metrics(self, r: CollectorRegistry) -> None:
        self.node_attempts = Counter(
            "spane_node_attempts_total",
            "Task attempts a worker ran, by outcome (succeeded, failed, cancelled).",
            ["workflow", "node", "type", "outcome"],
            registry=r,
        )
        self.attempt_duration = Histogram(
            "spane_node_attempt_duration_seconds",
            "Time a worker spent on one task attempt, from its start to its result.",
            ["workflow", "node", "type"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "spane_task_queue_wait_seconds",
            "Time from a task's dispatch by the orchestrator to its start on a worker.",
            ["pool"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )

    def _bus_metrics(self, r: CollectorRegistry) -> None:
        self.dead_letters = Counter(
            "spane_dead_letters_total",
            "Messages dead-lettered, by queue and reason class.",
            ["queue", "reason"],
            registry=r,
        )
        self.publish_confirm_seconds = Histogram(
            "spane_publish_confirm_seconds",
            "Time from a publication's first message to its last broker confirm, by kind.",
            ["kind"],
            buckets=FAST_BUCKETS,
            registry=r,
        )

    # ------------------------------------------------------------ orchestrator
    def record_outbox(
        self, tasks: Sequence[TaskMessage], events: Sequence[tuple[str, LifecycleEvent]]
    ) -> None:
        """Count what one batch's commands did: its dispatched tasks and its events."""
        for task in tasks:
            if task.attempt > 1:
                self.retries.labels(task.workflow_id, task.node_id).inc()
        for routing_key, event in events:
            if not event.type.startswith(_EVENT_PREFIX) or not routing_key.startswith(
                _COUNTED_KEYS
            ):
                continue
            status = event.type[len(_EVENT_PREFIX) :]
            workflow = str(event.data.get("workflow_id", ""))
            if status == "started":
                self.executions_started.labels(workflow).inc()
                self.executions_in_flight.inc()
            elif status in FINISHED_STATUSES:
                self.executions_finished.labels(workflow, status).inc()
                self.executions_in_flight.dec()

    def record_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_duration.observe(seconds)

    def record_timers_due(self, count: int) -> None:
        self.timers_pending.set(count)

    # ------------------------------------------------------------------ worker
    def record_task_start(self, task: TaskMessage, pool: str, now: float) -> None:
        """A worker starts ``task`` at wall-clock ``now``: its queue wait (clock skew
        between machines can make it negative: counted as 0)."""
        if task.dispatched_at > 0:
            self.queue_wait.labels(pool).observe(max(now - task.dispatched_at, 0.0))

    def record_attempt(self, task: TaskMessage, outcome: Outcome, seconds: float) -> None:
        """A worker finished running one attempt of ``task``."""
        self.node_attempts.labels(task.workflow_id, task.node_id, task.type, outcome).inc()
        self.attempt_duration.labels(task.workflow_id, task.node_id, task.type).observe(seconds)

    # --------------------------------------------------------------- bus hooks
    def dead_letter(self, queue: str, reason_class: str) -> None:
        self.dead_letters.labels(queue, reason_class).inc()

    def publish_confirm(self, kind: str, seconds: float) -> None:
        self.publish_confirm_seconds.labels(kind).observe(seconds)

    def install(self) -> None:
        """Make this the process's metrics for the bus hooks (:mod:`.hooks`)."""
        hooks.set_sink(self)

    def uninstall(self) -> None:
        if hooks.installed() is self:
            hooks.set_sink(None)

    # ---------------------------------------------------------------- scraping
    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

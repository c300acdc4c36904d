"""The Celery application of ``python -m bench --peers celery`` (the ``bench`` extra).

``celery -A bench.celery_app worker --pool prefork -c N -Q <queue>`` runs it; the
benchmark builds the same application in its own process (:func:`make_app`) to send the
canvases. Everything is configured from the environment (:data:`ENV`) so that the
worker and the client agree on a private namespace on the shared servers:

- broker: RabbitMQ, one private queue (``bench-celery-<8 hex>``, a durable classic
  queue, Celery's default kind) and a direct exchange of the same name;
- result backend: Redis with every key under ``bench-celery-<8 hex>:``
  (``global_keyprefix``), chords counted natively by the Redis backend.

Celery's defaults are kept otherwise (persistent messages, late ack off, no publisher
confirms, prefetch multiplier 4), except that the worker sends no events and answers
no remote control (no extra exchanges or queues to clean up), and results are JSON.
The tasks mirror SPANE's: ``noop`` does nothing and ``aggregate`` receives a chord's
results (W2's join).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

BROKER_ENV = "BENCH_CELERY_BROKER"
BACKEND_ENV = "BENCH_CELERY_BACKEND"
NAMESPACE_ENV = "BENCH_CELERY_NAMESPACE"
ENV = (BROKER_ENV, BACKEND_ENV, NAMESPACE_ENV)
NOOP = "bench.celery.noop"
AGGREGATE = "bench.celery.aggregate"


def config(broker: str, backend: str, namespace: str) -> dict[str, Any]:
    """Celery settings for a private ``namespace`` on ``broker`` / ``backend`` (pure)."""
    return {
        "broker_url": broker,
        "result_backend": backend,
        "result_backend_transport_options": {"global_keyprefix": f"{namespace}:"},
        "task_default_queue": namespace,
        "task_default_exchange": namespace,
        "task_default_routing_key": namespace,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": 3600,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_enable_remote_control": False,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
    }


def noop(data: Any = None, *_: Any) -> None:
    """Does nothing and returns nothing (a chain passes the previous result in)."""
    return None


def aggregate(results: list[Any]) -> int:
    """A chord's callback: receives every result of the group, returns how many."""
    return len(results)


def make_app(settings: Mapping[str, Any]) -> Any:
    """A Celery application with :func:`config`-style ``settings`` and the two tasks."""
    celery = importlib.import_module("celery")  # untyped, and only in the bench extra
    app = celery.Celery("bench")
    app.conf.update(settings)
    app.task(name=NOOP)(noop)
    app.task(name=AGGREGATE)(aggregate)
    return app


def app_from_env(env: Mapping[str, str]) -> Any:
    """The worker's application: :data:`ENV` from its environment."""
    missing = [name for name in ENV if not env.get(name)]
    if missing:
        raise RuntimeError(f"set {', '.join(missing)} (python -m bench --peers celery does)")
    return make_app(config(env[BROKER_ENV], env[BACKEND_ENV], env[NAMESPACE_ENV]))


app = app_from_env(os.environ) if all(os.environ.get(name) for name in ENV) else None
"""What ``celery -A bench.celery_app`` finds; None when imported outside a worker."""

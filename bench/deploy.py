"""A real deployment for the benchmark: ``spane orchestrator`` and ``spane worker`` as
separate OS processes on a private namespace, and a client engine in this process.

The namespace (``bench-<8 hex>``) prefixes the RabbitMQ queues and exchanges and the
Redis keys; the MongoDB database is ``bench_<8 hex>``. :meth:`Deployment.stop` sends
SIGTERM (SIGKILL after a grace period) and :meth:`Deployment.cleanup` deletes the
namespace's queues, exchanges, keys and database. An ``atexit`` hook kills processes
left behind if the benchmark itself dies before its ``finally`` blocks run.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.workloads import READY_ID, ready_workflow
from spane import Engine
from spane.bus.rabbit import RabbitBus
from spane.bus.topology import Topology
from spane.config import Settings
from spane.expressions.limits import DEFAULT_MAX_VALUE_BYTES
from spane.state.mongo import MongoDefinitionStore
from spane.state.redis import RedisStateStore

ROOT = Path(__file__).resolve().parents[1]
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"
MONGODB_URL = "mongodb://127.0.0.1:27018/"
STOP_GRACE = 15.0
READY_TIMEOUT = 60.0
CLEANUP_TIMEOUT = 30.0
SETTLE_TIMEOUT = 120.0
"""Seconds to wait for the archive to catch up before a workload (then it runs anyway)."""
SETTLE_POLL = 0.2
TASK_TYPES = ("function",)
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*")
"""The last line of a traceback: ``module.SomeError: message``."""


@dataclass(frozen=True, slots=True)
class Servers:
    amqp_url: str
    redis_url: str
    mongodb_url: str

    @classmethod
    def from_env(cls) -> Servers:
        """``SPANE_BENCH_{AMQP,REDIS,MONGODB}_URL``; else containers with
        ``SPANE_TEST_CONTAINERS=1`` and Docker (:mod:`bench.containers`); else localhost."""
        from bench.containers import docker_reachable, resolve_url, start_container

        def url(server: str, variable: str, default: str) -> str:
            env = os.environ
            return resolve_url(
                server, variable, default, env, docker=docker_reachable, start=start_container
            )

        return cls(
            url("RabbitMQ", "SPANE_BENCH_AMQP_URL", AMQP_URL),
            url("Redis", "SPANE_BENCH_REDIS_URL", REDIS_URL),
            url("MongoDB", "SPANE_BENCH_MONGODB_URL", MONGODB_URL),
        )


class DeploymentError(RuntimeError):
    """A process of the deployment died or never became ready."""


def rss_kib(pid: int) -> int | None:
    """Resident set size of a process in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class Deployment:
    """One orchestrator and one function-pool worker, plus their logs."""

    def __init__(
        self,
        servers: Servers,
        *,
        concurrency: int = 64,
        prefetch: int = 128,
        extra_env: Mapping[str, str] | None = None,
        max_value_bytes: int | None = None,
        replicas: int = 1,
    ) -> None:
        token = uuid.uuid4().hex[:8]
        self.servers = servers
        self.namespace = f"bench-{token}"
        self.database = f"bench_{token}"
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.extra_env = dict(extra_env or {})
        """Set last in both processes' environment, e.g. ``{"SPANE_NODE_EVENTS": "false"}``."""
        self.max_value_bytes = max_value_bytes
        """``SPANE_MAX_VALUE_BYTES`` of the processes and the client (W5); None: default."""
        self.replicas = replicas
        """Orchestrators and workers each (``orchestrator``, ``orchestrator-2``, ...)."""
        self.logs = Path(tempfile.mkdtemp(prefix=f"spane-{self.namespace}-"))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._files: list[IO[bytes]] = []
        atexit.register(self._kill_leftovers)

    @property
    def mongodb_url(self) -> str:
        return self.servers.mongodb_url.rstrip("/") + "/" + self.database

    def env(self) -> dict[str, str]:
        """The processes' environment: ours without ``SPANE_*``, then the deployment's
        settings, then ``extra_env`` (which wins)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("SPANE_")}
        return {
            **base,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")])),
            "SPANE_AMQP_URL": self.servers.amqp_url,
            "SPANE_REDIS_URL": self.servers.redis_url,
            "SPANE_MONGODB_URL": self.mongodb_url,
            "SPANE_NAMESPACE": self.namespace,
            "SPANE_PREFETCH": str(self.prefetch),
            "SPANE_WORKER_CONCURRENCY": str(self.concurrency),
            "SPANE_LOG_LEVEL": "INFO",
            **self._limit_env(),
            **self.extra_env,
        }

    def _limit_env(self) -> dict[str, str]:
        if self.max_value_bytes is None:
            return {}
        return {"SPANE_MAX_VALUE_BYTES": str(self.max_value_bytes)}

    # ------------------------------------------------------------ processes
    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._files.append(log)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "spane", *args],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start(self) -> None:
        """Start the orchestrator(s) and the worker(s) (``--import bench.tasks``)."""
        for index in range(1, self.replicas + 1):
            suffix = "" if index == 1 else f"-{index}"
            self.spawn_orchestrator(f"orchestrator{suffix}")
            self.spawn_worker(f"worker{suffix}")

    def spawn_orchestrator(self, name: str) -> None:
        self._spawn(name, "orchestrator")

    def spawn_worker(self, name: str) -> None:
        self._spawn(
            name,
            "worker",
            "--pool",
            "function",
            "--import",
            "bench.tasks",
            "--concurrency",
            str(self.concurrency),
        )

    def pids(self) -> dict[str, int]:
        return {name: process.pid for name, process in self.processes.items()}

    def rss(self) -> dict[str, int | None]:
        return {name: rss_kib(process.pid) for name, process in self.processes.items()}

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            code = process.poll()
            if code is not None:
                raise DeploymentError(f"{name} exited with {code}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def log_summary(self) -> dict[str, dict[str, Any]]:
        """Per process: how many WARNING / ERROR lines it logged, and its most frequent
        exceptions (``Name: message`` lines of tracebacks), for the report."""
        summary: dict[str, dict[str, Any]] = {}
        for name in self.processes:
            path = self.logs / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            lines = text.splitlines()
            exceptions = Counter(
                line[:160] for line in lines if EXCEPTION_LINE.match(line) is not None
            )
            summary[name] = {
                "warnings": sum(" WARNING " in line for line in lines),
                "errors": sum(" ERROR " in line for line in lines),
                "exceptions": dict(exceptions.most_common(3)),
            }
        return summary

    def stop(self) -> None:
        """SIGTERM everything, wait up to ``STOP_GRACE``, then SIGKILL what is left."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in self.processes.values():
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for file in self._files:
            file.close()
        self._files.clear()

    def _kill_leftovers(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()

    def remove_logs(self) -> None:
        shutil.rmtree(self.logs, ignore_errors=True)

    # --------------------------------------------------------------- client
    def client(self) -> Engine:
        """A client engine (no orchestrator, no pools) on the deployment's namespace."""
        limit = self.max_value_bytes or DEFAULT_MAX_VALUE_BYTES
        return Engine(
            settings=Settings(namespace=self.namespace, max_value_bytes=limit),
            bus=RabbitBus(
                self.servers.amqp_url,
                namespace=self.namespace,
                connection_name="bench-client",
                max_value_bytes=limit,
            ),
            state=RedisStateStore(self.servers.redis_url, namespace=self.namespace),
            definitions=MongoDefinitionStore(self.servers.mongodb_url, database=self.database),
            pools=[],
            run_orchestrator=False,
        )

    async def wait_ready(self, engine: Engine, timeout: float = READY_TIMEOUT) -> float:
        """Run a one-node workflow until it succeeds; returns the seconds it took."""
        begin = time.perf_counter()
        await engine.register(ready_workflow())
        async with asyncio.timeout(timeout):
            run = asyncio.ensure_future(engine.run(READY_ID, None, timeout=timeout))
            try:
                while not run.done():
                    self.check_alive()
                    await asyncio.wait({run}, timeout=0.2)
            finally:
                if not run.done():
                    run.cancel()
                    with contextlib.suppress(BaseException):
                        await run
            result = run.result()
        if not result.succeeded:
            raise DeploymentError(f"the readiness workflow ended {result.status}")
        return time.perf_counter() - begin

    # -------------------------------------------------------------- cleanup
    async def cleanup(self) -> list[str]:
        """Delete the namespace's queues and exchanges, Redis keys and MongoDB database.

        Best effort: returns what could not be removed instead of raising, so that a
        server that went away does not hide the error that stopped the run.
        """
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("RabbitMQ", lambda: delete_rabbit_namespace(self.servers.amqp_url, self.namespace)),
            ("Redis", lambda: delete_redis_namespace(self.servers.redis_url, self.namespace)),
            ("MongoDB", lambda: drop_mongo_database(self.servers.mongodb_url, self.database)),
        ]
        problems = []
        for server, step in steps:
            try:
                async with asyncio.timeout(CLEANUP_TIMEOUT):
                    await step()
            except Exception as exc:
                problems.append(f"{server}: {type(exc).__name__}: {exc}")
        return problems


async def archive_settled(engine: Engine, timeout: float = SETTLE_TIMEOUT) -> float:
    """Seconds until the to-archive queue of ``engine``'s Redis state store is empty (at
    most ``timeout``: the caller carries on then). The orchestrators archive in the
    background, so the backlog one workload leaves (W2's 500-node executions, say) would
    otherwise be worked off during the next one, charged to its time and cpu."""
    state = engine.state
    if not isinstance(state, RedisStateStore):
        return 0.0
    queues = [shard.to_archive for shard in state.keys.all_shards()]
    began = time.perf_counter()
    deadline = began + timeout
    while time.perf_counter() < deadline:
        async with state.client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zcard(queue)
            counts: list[int] = await pipe.execute()
        if not any(counts):
            break
        await asyncio.sleep(SETTLE_POLL)
    return time.perf_counter() - began


async def delete_rabbit_namespace(
    url: str, namespace: str, task_types: Iterable[str] = TASK_TYPES
) -> None:
    """Delete every queue and exchange a namespace can have (tests use it too)."""
    import aio_pika

    top = Topology(namespace)
    queues = [top.orchestrator_queue, top.dead_letter_queue, top.triggers_queue]
    queues += [top.task_queue(name) for name in task_types]
    exchanges = [
        top.tasks_exchange,
        top.orchestrator_exchange,
        top.triggers_exchange,
        top.events_exchange,
        top.cancellations_exchange,
        top.results_exchange,
        top.dlx,
    ]
    connection = await aio_pika.connect(url, client_properties={"connection_name": "cleanup"})
    async with connection:
        channel = await connection.channel()
        for queue in dict.fromkeys(queues):
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)


async def delete_redis_namespace(url: str, namespace: str) -> None:
    """Unlink every key of a namespace."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.unlink(*keys[start : start + 500])
    finally:
        await client.aclose()


async def drop_mongo_database(url: str, database: str) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    try:
        await client.drop_database(database)
    finally:
        await client.close()

"""A real deployment for the chaos tests: orchestrators and workers as OS processes.

The test process is only a client (an :class:`~spane.Engine` with no orchestrator and
no pools); ``Deployment`` starts, kills (-9), stops (SIGSTOP) and restarts the
``spane orchestrator`` / ``spane worker`` processes, all on one namespace of the test's
own. Its processes run with a short lease and liveness period (3 s, 1 s) unless a test
asks for others, or for the defaults (:meth:`Deployment.timing`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from spane import Engine
from spane.bus.rabbit import RabbitBus
from spane.config import Settings
from spane.state.mongo import MongoDefinitionStore
from spane.state.redis import RedisStateStore
from tests.chaos.runs import RunLog
from tests.redis_cluster import unlink_cluster_namespace
from tests.servers import Namespace, require_amqp, require_mongodb, require_redis

ROOT = Path(__file__).resolve().parents[2]

# Five function nodes: a -> (b, c) -> d -> e; output = 30 n + 60 for input {"n": n}.
WORKFLOW: dict[str, Any] = {
    "id": "chaos",
    "nodes": [
        {"id": "a", "function": "chaos.add", "input": {"x": "${ input.n }", "y": 1}},
        {"id": "b", "function": "chaos.mul", "after": ["a"], "input": {"x": "${ data }", "y": 2}},
        {"id": "c", "function": "chaos.add", "after": ["a"], "input": {"x": "${ data }", "y": 3}},
        {
            "id": "d",
            "function": "chaos.add",
            "after": ["b", "c"],
            "input": {"x": "${ nodes.b.output }", "y": "${ nodes.c.output }"},
        },
        {"id": "e", "function": "chaos.mul", "after": ["d"], "input": {"x": "${ data }", "y": 10}},
    ],
}


def expected_output(n: int) -> int:
    return 30 * n + 60


@dataclass
class Deployment:
    namespace: Namespace
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    files: list[IO[bytes]] = field(default_factory=list)
    counter: int = 0

    def spawn(self, kind: str, *args: str, env: dict[str, str] | None = None) -> str:
        """Start ``spane <kind> ...``; returns its name (for kill/logs)."""
        self.counter += 1
        name = f"{kind}-{self.counter}"
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        self.files.append(log)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "spane", kind, *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return name

    def orchestrator(self, env: dict[str, str] | None = None) -> str:
        return self.spawn("orchestrator", env=env)

    def worker(self, env: dict[str, str] | None = None) -> str:
        return self.spawn(
            "worker",
            "--pool",
            "function",
            "--import",
            "tests.chaos.chaos_tasks",
            "--concurrency",
            "8",
            env=env,
        )

    def timing(self, lease: float | None, liveness: float | None) -> None:
        """``SPANE_TASK_LEASE`` / ``SPANE_LIVENESS`` of the processes started from now on;
        None leaves the variable unset (the default: 10 s, 5 s)."""
        for variable, value in (("SPANE_TASK_LEASE", lease), ("SPANE_LIVENESS", liveness)):
            if value is None:
                self.env.pop(variable, None)
            else:
                self.env[variable] = str(value)

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def kill(self, name: str) -> None:
        """kill -9: no shutdown, no acks, no goodbyes."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def signal(self, name: str, number: int) -> None:
        self.processes[name].send_signal(number)

    def stop_all(self, grace: float = 15.0) -> None:
        """SIGTERM to every process (SIGCONT too, for a stopped one), then ``grace``
        seconds for all of them together before kill -9."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for file in self.files:
            if not file.closed:
                file.close()

    def alive(self) -> list[str]:
        return [name for name, p in self.processes.items() if p.poll() is None]

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _env(ns: Namespace, amqp: str, redis: str, mongodb: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SPANE_")}
    return {
        **base,
        "PYTHONPATH": str(ROOT),
        "SPANE_AMQP_URL": amqp,
        "SPANE_REDIS_URL": redis,
        "SPANE_MONGODB_URL": mongodb.rstrip("/") + "/" + ns.database,
        "SPANE_NAMESPACE": ns.name,
        "SPANE_TASK_LEASE": "3",
        "SPANE_LIVENESS": "1",
        "SPANE_LOG_LEVEL": "INFO",
        "CHAOS_RUNS_REDIS_URL": redis,  # where task bodies record their runs
    }


@pytest.fixture
async def deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    amqp, redis, mongodb = require_amqp(), require_redis(), require_mongodb()
    ns = Namespace.new("spanechaos")
    deploy = Deployment(ns, _env(ns, amqp, redis, mongodb), tmp_path)
    try:
        yield deploy
    finally:
        deploy.stop_all()
        await ns.cleanup(
            amqp_url=amqp, redis_url=redis, mongodb_url=mongodb, task_types=["function"]
        )


@pytest.fixture
async def cluster_deployment(
    deployment: Deployment, redis_cluster_url: str
) -> AsyncIterator[Deployment]:
    """The deployment with its state on a 3-master Redis Cluster (the task bodies still
    record their runs on the Redis server)."""
    deployment.env["SPANE_REDIS_URL"] = redis_cluster_url
    try:
        yield deployment
    finally:
        deployment.stop_all()
        await unlink_cluster_namespace(redis_cluster_url, deployment.namespace.name)


def client_for(deployment: Deployment) -> Engine:
    """A client of the deployment (connected the way a user's process would be); open it."""
    env = deployment.env
    ns = deployment.namespace
    return Engine(
        settings=Settings(_env_file=None, namespace=ns.name),
        bus=RabbitBus(env["SPANE_AMQP_URL"], namespace=ns.name, connection_name="chaos-client"),
        state=RedisStateStore(env["SPANE_REDIS_URL"], namespace=ns.name),
        definitions=MongoDefinitionStore(env["SPANE_MONGODB_URL"], database=ns.database),
        pools=[],
        run_orchestrator=False,
    )


@pytest.fixture
async def client(deployment: Deployment) -> AsyncIterator[Engine]:
    engine = client_for(deployment)
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()


@pytest.fixture
async def runs(deployment: Deployment) -> AsyncIterator[RunLog]:
    """The task bodies' runs (:mod:`tests.chaos.chaos_tasks` records them)."""
    url = deployment.env.get("CHAOS_RUNS_REDIS_URL") or deployment.env["SPANE_REDIS_URL"]
    log = RunLog(url, deployment.namespace.name)
    try:
        yield log
    finally:
        await log.close()

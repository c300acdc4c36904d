"""A real deployment for the chaos tests: orchestrators and workers as OS processes.

The test process is only a client (an :class:`~spane.Engine` with no orchestrator and
no pools); ``Deployment`` starts, kills (-9) and restarts the ``spane orchestrator`` /
``spane worker`` processes, all on one namespace of the test's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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

    def kill(self, name: str) -> None:
        """kill -9: no shutdown, no acks, no goodbyes."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for file in self.files:
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
async def client(deployment: Deployment) -> AsyncIterator[Engine]:
    """A client of the deployment (connected the way a user's process would be)."""
    env = deployment.env
    ns = deployment.namespace
    engine = Engine(
        settings=Settings(_env_file=None, namespace=ns.name),
        bus=RabbitBus(env["SPANE_AMQP_URL"], namespace=ns.name, connection_name="chaos-client"),
        state=RedisStateStore(env["SPANE_REDIS_URL"], namespace=ns.name),
        definitions=MongoDefinitionStore(env["SPANE_MONGODB_URL"], database=ns.database),
        pools=[],
        run_orchestrator=False,
    )
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()

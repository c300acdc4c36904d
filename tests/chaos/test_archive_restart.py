"""The archive under a Redis restart (docs/operations.md, "The archive"): the queue of
executions to archive lives in Redis, written in the commit that finishes an execution,
so a Redis that restarts from its append-only file loses none of them.

The shared test Redis keeps nothing across a restart, so this test starts a private
``redis-server --appendonly yes`` of its own, restarts it (SHUTDOWN, then start again on
the same files) while executions run, and checks every execution ends up in the archive.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from spane import ExecutionStatus
from tests.chaos.conftest import WORKFLOW, Deployment, client_for, expected_output
from tests.chaos.runs import RunLog
from tests.chaos.test_leases import wait_consumers

pytestmark = [pytest.mark.real, pytest.mark.slow, pytest.mark.timeout(180)]

EXECUTIONS = 20
ARCHIVED_WITHIN = 90.0


class PrivateRedis:
    """A redis-server with an append-only file in ``directory``, restartable."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--save",
                "",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
            ]
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with Redis.from_url(self.url, socket_timeout=1) as client:
                    if client.ping():
                        return
            except RedisConnectionError:
                time.sleep(0.05)
        raise AssertionError("the private redis-server did not start")

    def shutdown(self) -> None:
        """SHUTDOWN (the append-only file is flushed), and wait for the process to end."""
        if self.process is None or self.process.poll() is not None:
            return
        with Redis.from_url(self.url) as client:
            client.shutdown()
        self.process.wait(20)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        reason = "redis-server is not on PATH: no private Redis to restart"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true)", pytrace=False)
        pytest.skip(reason)
    directory = tmp_path / "redis"
    directory.mkdir()
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(10)


async def test_every_execution_is_archived_across_a_redis_restart(
    deployment: Deployment, runs: RunLog, private_redis: PrivateRedis
) -> None:
    deployment.env["SPANE_REDIS_URL"] = private_redis.url  # task runs stay in the shared one
    deployment.env["CHAOS_SLEEP"] = "0.1,0.4"
    client = client_for(deployment)
    await client.open()
    try:
        deployment.orchestrator()
        worker = deployment.worker()
        await wait_consumers(client, 1)
        await client.register(WORKFLOW)
        ids = {await client.start("chaos", {"n": n}): n for n in range(EXECUTIONS)}
        first = await client.wait(next(iter(ids)), 60)  # some finished, most still running
        assert first.status == ExecutionStatus.SUCCEEDED
        await runs.wait_in_flight([deployment.pid(worker)], 2)
        await asyncio.to_thread(private_redis.shutdown)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(private_redis.start)
        results = await asyncio.gather(*(client.wait(eid, 90) for eid in ids))
        wrong = [
            (r.execution_id, r.status, r.output)
            for r in results
            if r.status != ExecutionStatus.SUCCEEDED
            or r.output != expected_output(ids[r.execution_id])
        ]
        assert not wrong, wrong
        started = time.monotonic()
        missing = set(ids)
        while missing and time.monotonic() - started < ARCHIVED_WITHIN:
            for eid in list(missing):
                if await client.definitions.get_archived(eid) is not None:
                    missing.discard(eid)
            await asyncio.sleep(0.5)
        assert not missing, f"{len(missing)} execution(s) never archived: {sorted(missing)[:5]}"
        await runs.check(client, ids)
    finally:
        await asyncio.to_thread(deployment.stop_all, 10.0)  # while their Redis is up
        await client.close()

"""What the task bodies of a chaos test really did: the runs :mod:`tests.chaos.chaos_tasks`
records (task id, worker pid, start, end), read back by the test process.

``RunLog.check`` is the "duplicates nothing" check that outputs and event ids cannot make:
every task id (one attempt) ran its body at most once, except an attempt whose worker was
killed inside its body, which may run once more; the attempt each succeeded node settled
with ran its body to the end; and no attempt ran that its node never made.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

from spane import Engine
from tests.chaos.chaos_tasks import runs_key


@dataclass(frozen=True, slots=True)
class Run:
    task: str
    pid: int
    started: float
    ended: float | None

    @property
    def attempt(self) -> tuple[str, str, int]:
        execution_id, node_id, attempt = self.task.rsplit(":", 2)
        return execution_id, node_id, int(attempt)


class RunLog:
    def __init__(self, url: str, namespace: str) -> None:
        self.redis = Redis.from_url(url)
        self.key = runs_key(namespace)

    async def close(self) -> None:
        await self.redis.aclose()

    async def runs(self) -> list[Run]:
        """Every body run so far; an ``end`` closes the oldest open run of its (task, pid)."""
        entries = [json.loads(raw) for raw in await self.redis.lrange(self.key, 0, -1)]
        runs: list[Run] = []
        open_runs: dict[tuple[str, int], list[int]] = defaultdict(list)
        for entry in entries:
            key = (entry["task"], entry["pid"])
            if entry["phase"] == "start":
                open_runs[key].append(len(runs))
                runs.append(Run(entry["task"], entry["pid"], entry["at"], None))
            elif open_runs[key]:
                index = open_runs[key].pop(0)
                run = runs[index]
                runs[index] = Run(run.task, run.pid, run.started, entry["at"])
        return runs

    async def in_flight(self, pids: Collection[int] | None = None) -> list[Run]:
        """Runs started and not ended (on one of ``pids``)."""
        return [
            run
            for run in await self.runs()
            if run.ended is None and (pids is None or run.pid in pids)
        ]

    async def wait_in_flight(
        self, pids: Collection[int] | None, count: int, timeout: float = 30.0
    ) -> list[Run]:
        """Wait until at least ``count`` bodies are running (on ``pids``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = await self.in_flight(pids)
            if len(running) >= count:
                return running
            await asyncio.sleep(0.01)
        raise AssertionError(f"fewer than {count} task bodies running after {timeout}s")

    async def check(
        self, client: Engine, execution_ids: Iterable[str], killed: Collection[int] = ()
    ) -> list[Run]:
        """Exactly one run per attempt, except those a kill interrupted (see the module);
        every succeeded node's attempt ran; no attempt ran that the node never made.
        Returns the runs the kills interrupted."""
        runs = await self.runs()
        interrupted = [run for run in runs if run.pid in killed and run.ended is None]
        allowance = Counter(run.task for run in interrupted)
        count = Counter(run.task for run in runs)
        twice = {
            task: [r for r in runs if r.task == task]
            for task, n in count.items()
            if n > 1 + allowance[task]
        }
        assert not twice, f"attempts whose body ran more than once: {twice}"
        for execution_id in execution_ids:
            snapshot = await client.status(execution_id)
            for node_id, state in snapshot.nodes.items():
                final = f"{execution_id}:{node_id}:{state.attempt}"
                if state.status == "succeeded":
                    completed = [r for r in runs if r.task == final and r.ended is not None]
                    assert completed, (final, "succeeded without a body that ran to the end")
                made = {f"{execution_id}:{node_id}:{n}" for n in range(1, state.attempt + 1)}
                beyond = [
                    run
                    for run in runs
                    if run.attempt[:2] == (execution_id, node_id) and run.task not in made
                ]
                assert not beyond, f"attempts the node never made ran: {beyond}"
        return interrupted


async def assert_rerun_as_lost(client: Engine, interrupted: Iterable[Run]) -> None:
    """Every attempt a kill interrupted inside its body was declared lost and run again
    as a new attempt (without using a retry)."""
    for run in interrupted:
        execution_id, node_id, attempt = run.attempt
        node = (await client.status(execution_id)).nodes[node_id]
        assert node.attempt > attempt, ("not run again", run, node)
        assert node.lost >= 1, ("not declared lost", run, node)

"""``python -m bench --peers celery``: Celery 5 deployed and measured in the same run.

:class:`CeleryDeployment` starts ``celery -A bench.celery_app worker --pool prefork -c N``
as a subprocess (its own process group) on a private namespace of the benchmark's
RabbitMQ (a queue and an exchange ``bench-celery-<8 hex>``) and Redis (keys under
``bench-celery-<8 hex>:``), and removes both afterwards. The concurrency is SPANE's
(:data:`bench.suite.CONCURRENCY` task slots in its one worker process): Celery's prefork
pool runs as many child processes. The workloads are Celery's idiomatic forms, sent from
this process and awaited on the Redis result backend:

- W1: ``chain`` of ``steps`` no-op tasks, each passed the previous result;
- W2: ``chain(noop, chord(group(width x noop), aggregate))`` -- 1 -> width -> 1, the
  callback receiving the width results;
- W3: ``diamonds`` concurrent applications of the diamond's canvas
  (:func:`bench.peers.dag_to_canvas`).

Celery's API is synchronous; each run executes in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from bench.celery_app import AGGREGATE, BACKEND_ENV, BROKER_ENV, NAMESPACE_ENV, NOOP, config
from bench.celery_app import make_app as make_celery_app
from bench.deploy import ROOT, Servers, delete_redis_namespace
from bench.peers import dag_to_canvas, render
from bench.report import W1_STEP, W2_TOTAL, W3_EXECUTIONS, W3_NODES, Metric, WorkloadResult
from bench.workloads import DIAMOND_EDGES, RunFailedError, Sample, Sizes

READY_TIMEOUT = 90.0
STOP_GRACE = 15.0


class CeleryUnavailableError(RuntimeError):
    """Celery is not installed (``pip install -e '.[bench]'``)."""


def celery_module() -> Any:
    try:
        return importlib.import_module("celery")
    except ImportError:
        raise CeleryUnavailableError(
            "Celery is not installed: pip install 'celery[redis]>=5.3' (the bench extra)"
        ) from None


class CeleryFactory:
    """:class:`bench.peers.CanvasFactory` building Celery signatures."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.celery = celery_module()

    def task(self, node: str) -> Any:
        return self.app.signature(NOOP, args=(), kwargs={})

    def chain(self, steps: Sequence[Any]) -> Any:
        return self.celery.chain(*steps)

    def group(self, branches: Sequence[Any]) -> Any:
        return self.celery.group(*branches)

    def chord(self, header: Any, body: Any) -> Any:
        return self.celery.chord(header, body)


def worker_children(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (the prefork pool's children)."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = Path(f"/proc/{entry}/stat").read_text()
            if int(raw[raw.rindex(")") + 2 :].split()[1]) == pid:
                children.append(int(entry))
    return children


class CeleryDeployment:
    """One Celery prefork worker on a private queue and key prefix."""

    def __init__(self, servers: Servers, *, concurrency: int) -> None:
        self.servers = servers
        self.concurrency = concurrency
        self.namespace = f"bench-celery-{uuid.uuid4().hex[:8]}"
        self.logs = Path(tempfile.mkdtemp(prefix=f"spane-{self.namespace}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.settings = config(servers.amqp_url, servers.redis_url, self.namespace)
        self.app: Any = None

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SPANE_")}
        return {
            **base,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), base.get("PYTHONPATH")])),
            BROKER_ENV: self.servers.amqp_url,
            BACKEND_ENV: self.servers.redis_url,
            NAMESPACE_ENV: self.namespace,
        }

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.celery_app",
            "worker",
            "--pool",
            "prefork",
            "-c",
            str(self.concurrency),
            "-Q",
            self.namespace,
            "-n",
            f"{self.namespace}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ]

    def start(self) -> None:
        celery_module()
        self._log = open(self.logs / "celery-worker.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches the children
        )
        self.app = make_celery_app(self.settings)

    def pids(self) -> list[int]:
        if self.process is None:
            return []
        return [self.process.pid, *worker_children(self.process.pid)]

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = (self.logs / "celery-worker.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the Celery worker exited with {self.process.returncode}:\n{tail}")

    async def wait_ready(self, timeout: float = READY_TIMEOUT) -> float:
        """Send no-ops until one comes back; returns the seconds it took."""
        begin = time.perf_counter()
        deadline = begin + timeout
        while True:
            self.check_alive()
            try:
                await asyncio.to_thread(self._ping)
                return time.perf_counter() - begin
            except Exception:
                if time.perf_counter() > deadline:
                    raise
                await asyncio.sleep(0.5)

    def _ping(self) -> None:
        self.app.signature(NOOP).apply_async().get(timeout=5)

    def stop(self) -> None:
        """SIGTERM the worker's process group (warm shutdown), SIGKILL it after a grace."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if self.app is not None:
            with contextlib.suppress(Exception):
                self.app.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    async def cleanup(self) -> list[str]:
        """Delete the queue, the exchange and the result keys; what failed, as text."""
        problems = []
        try:
            await _delete_rabbit(self.servers.amqp_url, self.namespace)
        except Exception as exc:
            problems.append(f"RabbitMQ: {type(exc).__name__}: {exc}")
        try:
            await delete_redis_namespace(self.servers.redis_url, self.namespace)
        except Exception as exc:
            problems.append(f"Redis: {type(exc).__name__}: {exc}")
        return problems

    def remove_logs(self) -> None:
        import shutil

        shutil.rmtree(self.logs, ignore_errors=True)


async def _delete_rabbit(url: str, namespace: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url, client_properties={"connection_name": "cleanup"})
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(namespace)
        await channel.exchange_delete(namespace)


# ---------------------------------------------------------------- workloads
class CeleryWorkload:
    """A workload on Celery: the shape :func:`bench.suite.measure` runs."""

    key = ""
    repeat: int | None = None

    def __init__(self, deployment: CeleryDeployment) -> None:
        self.deployment = deployment
        self.app = deployment.app
        self.factory = CeleryFactory(deployment.app)

    @property
    def title(self) -> str:
        raise NotImplementedError

    @property
    def nodes(self) -> int:
        raise NotImplementedError

    def metrics(self) -> list[Metric]:
        raise NotImplementedError

    def run_sync(self, timeout: float) -> Sample:
        raise NotImplementedError

    async def prepare(self, engine: object) -> None:
        return None

    async def run_once(self, engine: object, timeout: float) -> Sample:
        return await asyncio.to_thread(self.run_sync, timeout)

    async def warm_once(self, engine: object, timeout: float) -> Sample:
        return await self.run_once(engine, timeout)

    async def abort(self, engine: object) -> None:
        return None

    async def finish(self, engine: object) -> None:
        return None

    def noop(self) -> Any:
        return self.app.signature(NOOP)


class CeleryChain(CeleryWorkload):
    key = "w1"

    def __init__(self, deployment: CeleryDeployment, steps: int) -> None:
        super().__init__(deployment)
        self.steps = steps

    @property
    def title(self) -> str:
        return f"W1 chain, {self.steps} steps"

    @property
    def nodes(self) -> int:
        return self.steps

    def metrics(self) -> list[Metric]:
        return [Metric(W1_STEP, "ms")]

    def run_sync(self, timeout: float) -> Sample:
        canvas = self.factory.chain([self.noop() for _ in range(self.steps)])
        begin = time.perf_counter()
        canvas.apply_async().get(timeout=timeout)
        elapsed = time.perf_counter() - begin
        return Sample({W1_STEP: elapsed * 1000 / self.steps}, {"total_s": elapsed})


class CeleryChord(CeleryWorkload):
    key = "w2"

    def __init__(self, deployment: CeleryDeployment, width: int) -> None:
        super().__init__(deployment)
        self.width = width

    @property
    def title(self) -> str:
        return f"W2 fan-out/in 1->{self.width}->1"

    @property
    def nodes(self) -> int:
        return self.width + 2

    def metrics(self) -> list[Metric]:
        return [Metric(W2_TOTAL, "s"), Metric(W3_NODES, "1/s", better="higher")]

    def run_sync(self, timeout: float) -> Sample:
        header = self.factory.group([self.noop() for _ in range(self.width)])
        body = self.app.signature(AGGREGATE)
        canvas = self.factory.chain([self.noop(), self.factory.chord(header, body)])
        begin = time.perf_counter()
        count = canvas.apply_async().get(timeout=timeout)
        elapsed = time.perf_counter() - begin
        if count != self.width:
            raise RunFailedError(f"the chord's callback saw {count} results, not {self.width}")
        return Sample({W2_TOTAL: elapsed, W3_NODES: self.nodes / elapsed}, {"total_s": elapsed})


class CeleryDiamonds(CeleryWorkload):
    key = "w3"

    def __init__(self, deployment: CeleryDeployment, executions: int) -> None:
        super().__init__(deployment)
        self.executions = executions
        self.canvas = dag_to_canvas(DIAMOND_EDGES)

    @property
    def title(self) -> str:
        return f"W3 {self.executions} x 10-node diamond"

    @property
    def nodes(self) -> int:
        return self.executions * len(DIAMOND_EDGES)

    def metrics(self) -> list[Metric]:
        return [
            Metric(W3_EXECUTIONS, "1/s", better="higher"),
            Metric(W3_NODES, "1/s", better="higher"),
        ]

    def run_sync(self, timeout: float) -> Sample:
        canvases = [render(self.canvas, self.factory) for _ in range(self.executions)]
        begin = time.perf_counter()
        results = [canvas.apply_async() for canvas in canvases]
        for result in results:
            result.get(timeout=timeout)
        elapsed = time.perf_counter() - begin
        values = {W3_EXECUTIONS: self.executions / elapsed, W3_NODES: self.nodes / elapsed}
        return Sample(values, {"total_s": elapsed})


def celery_workloads(
    deployment: CeleryDeployment, keys: Sequence[str], sizes: Sizes
) -> list[CeleryWorkload]:
    """Celery's form of each of W1-W3 in ``keys`` (W4/W5 have none)."""
    built: dict[str, CeleryWorkload] = {}
    if "w1" in keys:
        built["w1"] = CeleryChain(deployment, sizes.chain_steps)
    if "w2" in keys:
        built["w2"] = CeleryChord(deployment, sizes.fan_width)
    if "w3" in keys:
        built["w3"] = CeleryDiamonds(deployment, sizes.diamonds)
    return [built[key] for key in keys if key in built]


async def run_celery(context: Any, run: Any, servers: Servers) -> list[WorkloadResult]:
    """W1-W3 (those chosen) on a Celery worker deployed for the purpose, then removed.

    ``context`` and ``run`` are :class:`bench.suite.Context` and
    :class:`bench.report.BenchRun`.
    """
    from bench.suite import CONCURRENCY, measure

    keys = [key for key in context.options.workloads if key in ("w1", "w2", "w3")]
    if not keys:
        return []
    deployment = CeleryDeployment(servers, concurrency=CONCURRENCY)
    info: dict[str, Any] = {"namespace": deployment.namespace, "concurrency": CONCURRENCY}
    run.deployment["celery"] = info
    print(f"celery: namespace {deployment.namespace}, logs in {deployment.logs}", file=sys.stderr)
    results: list[WorkloadResult] = []
    ok = False
    try:
        deployment.start()
        info["ready_s"] = await deployment.wait_ready()
        info["pids"] = pids = deployment.pids()
        context.meter.roles.update({pid: "worker" for pid in pids})
        info["celery"] = celery_module().__version__
        for workload in celery_workloads(deployment, keys, context.options.sizes):
            results.append(await measure(workload, None, "celery", context))
            deployment.check_alive()
        ok = not any(result.error for result in results)
    except Exception as exc:
        results.append(WorkloadResult("celery", "all", "deployment", error=f"celery: {exc}"))
    finally:
        deployment.stop()
        problems = await deployment.cleanup()
        if problems:
            info["cleanup_problems"] = problems
        if ok:
            deployment.remove_logs()
        else:
            info["logs"] = str(deployment.logs)
    return results

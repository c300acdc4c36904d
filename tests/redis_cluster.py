"""A Redis Cluster for tests: three masters on loopback, started on demand and left running.

:func:`ensure_redis_cluster` returns ``redis+cluster://127.0.0.1:<port>/`` for a cluster of
masters only (no replicas) on ports 7101, 7102 and 7103 (``SPANE_TEST_REDIS_CLUSTER_PORTS``,
comma-separated, overrides them). Nodes that already form a healthy cluster are reused; nodes
that are down are started (``redis-server --daemonize yes``, files under
``<tmp>/spane-redis-cluster/<port>``); nodes that are up but form no cluster, or a bad one,
are flushed, reset (``CLUSTER RESET HARD``) and joined again (``redis-cli --cluster create``).
An exclusive lock on ``<tmp>/spane-redis-cluster/lock`` lets two test sessions call it at once.

The nodes are left running when the tests end, so the next session reuses them in
milliseconds; they keep nothing on disk but ``nodes-<port>.conf`` (``--save ""``, no AOF).
Stop them with ``redis-cli -p <port> shutdown nosave``; a CI machine's services end with
its session anyway.

:func:`require_redis_cluster` is the ``require_*`` of :mod:`tests.servers` for it, and
:func:`unlink_cluster_namespace` removes one test's keys from every primary.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.servers import _require

HOST = "127.0.0.1"
DEFAULT_PORTS = (7101, 7102, 7103)
CLUSTER_DIR = Path(tempfile.gettempdir()) / "spane-redis-cluster"
SLOTS = 16384
NODE_TIMEOUT_MS = 5000
READY_TIMEOUT = 20.0  # seconds for the nodes to answer, and again for the cluster to be ok
LOCK_TIMEOUT = 120.0  # seconds to wait for another session's ensure_redis_cluster


class RedisClusterUnavailableError(RuntimeError):
    """The test cluster cannot be started or formed (the message says why)."""


def cluster_ports() -> tuple[int, ...]:
    """The nodes' ports: ``SPANE_TEST_REDIS_CLUSTER_PORTS`` or 7101, 7102, 7103."""
    raw = os.environ.get("SPANE_TEST_REDIS_CLUSTER_PORTS", "").strip()
    if not raw:
        return DEFAULT_PORTS
    try:
        ports = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise RedisClusterUnavailableError(
            f"SPANE_TEST_REDIS_CLUSTER_PORTS={raw!r} is not a comma-separated list of ports"
        ) from None
    if len(ports) < 3 or len(set(ports)) != len(ports):
        raise RedisClusterUnavailableError(
            f"SPANE_TEST_REDIS_CLUSTER_PORTS={raw!r}: a cluster needs 3 distinct ports or more"
        )
    return ports


def redis_py_url(url: str) -> str:
    """``redis+cluster://…`` (``rediss+cluster://…``) as redis-py's ``redis://…``."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.removesuffix('+cluster')}{sep}{rest}"


def ensure_redis_cluster() -> str:
    """The URL of the test cluster, started or formed first if it is not up and healthy.

    Raises :class:`RedisClusterUnavailableError` when redis-server or redis-cli is missing, a
    node does not start, or the cluster is not ok within :data:`READY_TIMEOUT`.
    """
    ports = cluster_ports()
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise RedisClusterUnavailableError(
            "redis-server and redis-cli must be on PATH to start the test Redis Cluster"
        )
    CLUSTER_DIR.mkdir(parents=True, exist_ok=True)
    with _locked(CLUSTER_DIR / "lock"):
        if not _healthy(ports):
            down = [port for port in ports if not _answers(port)]
            for port in down:
                _start(server, port)
            _wait(lambda: all(_answers(port) for port in down), "the nodes to answer", ports)
            if not _healthy(ports):
                _reset(ports)
                _create(cli, ports)
                _wait(lambda: _healthy(ports), "cluster_state:ok on every node", ports)
    return f"redis+cluster://{HOST}:{ports[0]}/"


def require_redis_cluster() -> str:
    """``SPANE_TEST_REDIS_CLUSTER_URL`` if it answers, else :func:`ensure_redis_cluster`'s
    cluster; neither skips the test with the reason, or fails it under ``CI=true``."""
    url = os.environ.get("SPANE_TEST_REDIS_CLUSTER_URL")
    if url:
        return _require("Redis Cluster", url, _probed)
    return _require("Redis Cluster", _default_url(), _ensure_probe)


async def unlink_cluster_namespace(url: str, namespace: str) -> None:
    """Unlink every ``<namespace>:*`` and ``{<namespace>}:*`` key on every primary.

    Keys are unlinked one slot at a time: one UNLINK over keys in different slots fails
    with CROSSSLOT.
    """
    from redis.asyncio.cluster import RedisCluster
    from redis.crc import key_slot

    client = RedisCluster.from_url(redis_py_url(url))
    try:
        await client.initialize()
        for node in client.get_primaries():
            by_slot: defaultdict[int, list[bytes]] = defaultdict(list)
            for pattern in (f"{namespace}:*", f"{{{namespace}}}:*"):
                async for key in client.scan_iter(match=pattern, count=1000, target_nodes=node):
                    by_slot[key_slot(key)].append(key)
            for keys in by_slot.values():
                for start in range(0, len(keys), 500):
                    await client.unlink(*keys[start : start + 500])
    finally:
        await client.aclose()


def _default_url() -> str:
    try:
        return f"redis+cluster://{HOST}:{cluster_ports()[0]}/"
    except RedisClusterUnavailableError:
        return "redis+cluster://(SPANE_TEST_REDIS_CLUSTER_PORTS)/"


@functools.cache
def _ensure_probe(url: str) -> None:
    ensure_redis_cluster()


@functools.cache
def _probed(url: str) -> None:
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(
        redis_py_url(url), socket_connect_timeout=2.0, socket_timeout=2.0
    )
    try:
        info = client.cluster_info()
    finally:
        client.close()
    if info.get("cluster_state") != "ok" or int(info.get("cluster_slots_ok", 0)) != SLOTS:
        raise RedisClusterUnavailableError(f"the cluster is not ok: {info}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as file:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RedisClusterUnavailableError(
                        f"{path} stayed locked for {LOCK_TIMEOUT:.0f}s"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _command(port: int, *args: object) -> object:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(
        host=HOST,
        port=port,
        socket_connect_timeout=1.0,
        socket_timeout=10.0,
        retry=Retry(NoBackoff(), 0),  # a node that is down is reported at once
    )
    try:
        return client.execute_command(*args)
    finally:
        client.close()


def _answers(port: int) -> bool:
    try:
        return bool(_command(port, "PING"))
    except Exception:
        return False


def _cluster_info(port: int) -> dict[str, str]:
    raw = _command(port, "CLUSTER", "INFO")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and line.strip())


def _masters(port: int) -> set[int]:
    """The ports of the masters that the node knows, healthy ones only."""
    raw = _command(port, "CLUSTER", "NODES")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    masters: set[int] = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = set(fields[2].split(","))
        if "master" in flags and not flags & {"fail", "fail?", "handshake", "noaddr"}:
            masters.add(int(fields[1].split("@", 1)[0].rsplit(":", 1)[1]))
    return masters


def _healthy(ports: tuple[int, ...]) -> bool:
    """Every node is up, ``cluster_state:ok``, and knows exactly these masters, which
    serve all 16384 slots."""
    try:
        for port in ports:
            info = _cluster_info(port)
            if (
                info.get("cluster_state") != "ok"
                or int(info.get("cluster_slots_ok", 0)) != SLOTS
                or int(info.get("cluster_size", 0)) != len(ports)
                or int(info.get("cluster_known_nodes", 0)) != len(ports)
                or _masters(port) != set(ports)
            ):
                return False
    except Exception:
        return False
    return True


def _start(server: str, port: int) -> None:
    directory = CLUSTER_DIR / str(port)
    directory.mkdir(parents=True, exist_ok=True)
    # A node started from an old nodes.conf would rejoin a cluster that the others have
    # forgotten or marked failed; it starts empty and is joined again below.
    (directory / f"nodes-{port}.conf").unlink(missing_ok=True)
    args = [
        server,
        "--port", str(port),
        "--bind", HOST,
        "--cluster-enabled", "yes",
        "--cluster-config-file", f"nodes-{port}.conf",
        "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "yes",
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
        "--pidfile", str(directory / "redis.pid"),
    ]  # fmt: skip
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise RedisClusterUnavailableError(
            f"redis-server on port {port} exited with {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()}{_log_tail(port)}"
        )


def _reset(ports: tuple[int, ...]) -> None:
    """Empty every node and make it forget the others (a master with keys cannot reset)."""
    for port in ports:
        with contextlib.suppress(Exception):  # a replica refuses FLUSHALL; RESET empties it
            _command(port, "FLUSHALL")
    for port in ports:
        try:
            _command(port, "CLUSTER", "RESET", "HARD")
        except Exception as exc:
            raise RedisClusterUnavailableError(
                f"CLUSTER RESET HARD on {HOST}:{port} failed ({type(exc).__name__}: {exc})"
            ) from exc


def _create(cli: str, ports: tuple[int, ...]) -> None:
    args = [cli, "--cluster", "create", *(f"{HOST}:{port}" for port in ports)]
    args += ["--cluster-replicas", "0", "--cluster-yes"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RedisClusterUnavailableError(
            f"redis-cli --cluster create exited with {result.returncode}: "
            f"{(result.stdout + result.stderr).strip()[-2000:]}"
        )


def _wait(ready: Callable[[], bool], what: str, ports: tuple[int, ...]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            tails = "".join(_log_tail(port) for port in ports)
            raise RedisClusterUnavailableError(
                f"timed out after {READY_TIMEOUT:.0f}s waiting for {what}{tails}"
            )
        time.sleep(0.1)


def _log_tail(port: int, lines: int = 5) -> str:
    log = CLUSTER_DIR / str(port) / "redis.log"
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n{log}:\n" + "\n".join(tail)

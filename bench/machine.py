"""What the benchmark ran on, and who else used the cpus meanwhile (Linux ``/proc``).

A shared machine skews every figure: :class:`CpuMeter` splits the cpu time spent during
a measurement into this benchmark's processes (the bench itself and the deployment it
started), the servers (RabbitMQ, Redis, the MongoDB-wire server) and everything else,
so that the report can say when other processes competed with the run;
:func:`cpu_seconds` splits the same snapshots per process role (orchestrator, worker,
each server, the client).
"""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVERS = {
    "beam.smp": "rabbitmq",
    "redis-server": "redis",
    "mongod": "mongodb",
    "secantusd": "mongodb",
}
"""Command names (or prefixes) of the server processes, and the role each plays."""
CLIENT = "client"
"""The role of this process (the benchmark, the deployment's client)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def machine_info() -> dict[str, Any]:
    """CPUs, Python, platform, and the commit measured (``spane_dirty``: uncommitted
    changes under ``spane/``)."""
    changed = _git("status", "--porcelain", "--", "spane")
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "executable": sys.executable,
        "loadavg_start": list(os.getloadavg()),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "spane_dirty": None if changed is None else bool(changed),
    }


# ------------------------------------------------------------------ cpu time
def _machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cpus since boot, from ``/proc/stat``."""
    try:
        first_line = Path("/proc/stat").read_text().split("\n", 1)[0]
        fields = [int(v) for v in first_line.split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _process_jiffies(pid: int) -> tuple[str, int] | None:
    """(command name, user + system jiffies) of one process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, int(fields[11]) + int(fields[12])


def _all_pids() -> list[int]:
    try:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    machine: tuple[int, int] | None
    processes: dict[int, tuple[str, int]]


@dataclass(frozen=True, slots=True)
class CpuShares:
    """Shares of the machine's whole capacity (1.0 = every cpu busy) over a span."""

    busy: float
    ours: float
    servers: float
    others: float

    def as_dict(self) -> dict[str, float]:
        return {
            "busy": round(self.busy, 4),
            "ours": round(self.ours, 4),
            "servers": round(self.servers, 4),
            "others": round(self.others, 4),
        }


class CpuMeter:
    """Who used the cpus between :meth:`snapshot` and :meth:`shares`."""

    def __init__(self) -> None:
        self.roles: dict[int, str] = {os.getpid(): CLIENT}
        """This benchmark's processes: pid -> role (``client``, ``orchestrator``, ...)."""

    @property
    def ours(self) -> set[int]:
        return set(self.roles)

    def add(self, pids: Mapping[str, int]) -> None:
        """Processes that count as this benchmark's (the deployment's), by role."""
        self.roles.update((pid, role) for role, pid in pids.items())

    def snapshot(self) -> CpuSnapshot:
        processes = {}
        for pid in _all_pids():
            info = _process_jiffies(pid)
            if info is not None:
                processes[pid] = info
        return CpuSnapshot(_machine_jiffies(), processes)

    def shares(self, before: CpuSnapshot, after: CpuSnapshot | None = None) -> CpuShares | None:
        after = after or self.snapshot()
        ours_pids = self.ours
        if before.machine is None or after.machine is None:
            return None
        total = after.machine[1] - before.machine[1]
        if total <= 0:
            return None
        busy = after.machine[0] - before.machine[0]
        ours = servers = 0
        for pid, (name, jiffies) in after.processes.items():
            spent = jiffies - before.processes.get(pid, (name, 0))[1]
            if pid in ours_pids:
                ours += spent
            elif server_role(name) is not None:
                servers += spent
        # /proc/stat counts jiffies of all cpus; per-process jiffies are comparable.
        others = max(busy - ours - servers, 0)
        return CpuShares(*(min(part / total, 1.0) for part in (busy, ours, servers, others)))


def server_role(name: str) -> str | None:
    """The role of a server process from its command name, or ``None``."""
    return next((role for prefix, role in SERVERS.items() if name.startswith(prefix)), None)


def cpu_seconds(
    before: CpuSnapshot, after: CpuSnapshot, roles: Mapping[int, str]
) -> dict[str, float]:
    """Cpu seconds (user + system) spent between two snapshots per role: the pids in
    ``roles``, and the servers recognised by their command names."""
    spent: dict[str, float] = defaultdict(float)
    for pid, (name, jiffies) in after.processes.items():
        role = roles.get(pid) or server_role(name)
        if role is not None:
            spent[role] += (jiffies - before.processes.get(pid, (name, 0))[1]) / CLOCK_TICKS
    return dict(spent)


async def cpu_busy(interval: float) -> float | None:
    """The share of all cpus' time spent busy over the next ``interval`` seconds."""
    first = _machine_jiffies()
    await asyncio.sleep(interval)
    second = _machine_jiffies()
    if first is None or second is None or second[1] == first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1])

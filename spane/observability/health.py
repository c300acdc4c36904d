"""Readiness checks: each answers ``None`` when its part is usable, else why not.

The processes build their checks from what they hold (duck-typed: this package imports
neither the bus, the stores, the service nor the workers):

- the broker: the bus's ``connected`` attribute when it has one (RabbitMQ);
- Redis: one cheap read of the state store (a missing execution's meta);
- MongoDB (the orchestrator): one cheap read of the definition store;
- the consumer: the orchestrator's inbox / the worker's task consumer is running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

__all__ = [
    "PROBE_ID",
    "Check",
    "Checks",
    "bus_check",
    "definitions_check",
    "flag_check",
    "run_checks",
    "state_check",
]

Check = Callable[[], Awaitable[str | None]]
Checks = Mapping[str, Check]
PROBE_ID = "spane-readiness-probe"
"""The execution id a state probe reads (it never exists)."""


class _StateProbe(Protocol):
    async def get_meta(self, execution_id: str) -> object: ...


class _DefinitionsProbe(Protocol):
    async def list_dead_letters(self, limit: int = 100) -> object: ...


def bus_check(bus: object) -> Check:
    """The bus's connection (a bus that cannot tell, like the in-memory one, is up)."""

    async def check() -> str | None:
        return None if getattr(bus, "connected", True) else "not connected to the broker"

    return check


def state_check(state: _StateProbe) -> Check:
    async def check() -> str | None:
        await state.get_meta(PROBE_ID)
        return None

    return check


def definitions_check(definitions: _DefinitionsProbe) -> Check:
    async def check() -> str | None:
        await definitions.list_dead_letters(limit=1)
        return None

    return check


def flag_check(flag: Callable[[], bool], reason: str) -> Check:
    """Up while ``flag()`` is true, else ``reason``."""

    async def check() -> str | None:
        return None if flag() else reason

    return check


async def run_checks(checks: Checks, timeout: float = 2.0) -> dict[str, str | None]:
    """Every check, concurrently, each within ``timeout`` seconds; a check that raises
    or times out reports the exception."""

    async def one(check: Check) -> str | None:
        try:
            async with asyncio.timeout(timeout):
                return await check()
        except TimeoutError:
            return f"no answer within {timeout:g} s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    return dict(zip(names, results, strict=True))

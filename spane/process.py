"""Process-wide tuning for the spane processes and the embedded engine.

Two knobs, both measured with the benchmark harness (README *Performance*):

- The event loop: uvloop when installed (part of the ``distributed`` extra), else
  asyncio; ``SPANE_EVENT_LOOP=asyncio`` turns it off.
- The garbage collector: the engine allocates many short-lived records, and with
  CPython's default thresholds the collector runs every 700 allocations and walks the
  records that survive (every retained execution) again and again: about a fifth of
  the embedded engine's time on W3. :func:`tune_gc` raises the youngest generation's
  threshold (nothing is frozen or disabled: cyclic garbage is still collected, a little
  later). ``SPANE_GC_TUNING=false`` leaves the collector alone.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from spane.errors import ConfigurationError

T = TypeVar("T")
LoopChoice = Literal["auto", "asyncio", "uvloop"]

GC_YOUNGEST_THRESHOLD = 10_000
"""Allocations between collections of the youngest generation (CPython's default: 700)."""

_gc_tuned = False


def loop_factory(choice: LoopChoice = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for ``asyncio.Runner``; ``None`` means asyncio's default loop.

    ``uvloop`` asked for explicitly but not installed raises :class:`RuntimeError`.
    """
    if choice == "asyncio":
        return None
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise ConfigurationError(
                "SPANE_EVENT_LOOP=uvloop but uvloop is not installed (pip install uvloop)"
            )
        return None
    import uvloop

    return uvloop.new_event_loop


def run_loop(coro: Coroutine[Any, Any, T], choice: LoopChoice = "auto") -> T:
    """``asyncio.run`` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(coro)


def tune_gc() -> bool:
    """Raise the youngest generation's threshold, once per process (later calls do
    nothing). Returns whether this call tuned it."""
    global _gc_tuned
    if _gc_tuned:
        return False
    _gc_tuned = True
    youngest, middle, oldest = gc.get_threshold()
    if youngest:  # 0 means the application turned automatic collection off: keep it so
        gc.set_threshold(max(youngest, GC_YOUNGEST_THRESHOLD), middle, oldest)
    return True

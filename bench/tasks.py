"""The no-op task every workload runs, registered as ``bench.noop``.

Importing this module registers it in SPANE's default registry (what ``spane worker
--import bench.tasks`` uses); :func:`registry` gives the embedded engine its own.
"""

from __future__ import annotations

from typing import Any

import spane
from spane import TaskRegistry

NOOP = "bench.noop"


async def noop(data: Any) -> None:
    """Does nothing and returns nothing: what is left is the engine's own cost."""
    return None


spane.task(NOOP)(noop)


def registry() -> TaskRegistry:
    """A private registry holding only the no-op task (for the embedded engine)."""
    own = TaskRegistry()
    own.task(NOOP)(noop)
    return own

"""The tasks the workloads run, registered as ``bench.noop``, ``bench.pad``, ``bench.count``.

Importing this module registers them in SPANE's default registry (what ``spane worker
--import bench.tasks`` uses); :func:`registry` gives the embedded engine its own.

- ``bench.noop`` does nothing (W1-W4): what is left is the engine's own cost.
- ``bench.pad`` is W5's loop body: it takes a ~100-byte item and returns ~200 bytes.
- ``bench.count`` is the chaos run's diamond node: it returns its input's ``seed`` and
  ``n`` = 1 + the sum of its upstreams' ``n``, so that the last node's output proves that
  every node ran on the right data exactly once as far as the result is concerned
  (:func:`bench.chaos.expected_count`).
"""

from __future__ import annotations

from typing import Any

import spane
from spane import TaskRegistry

NOOP = "bench.noop"
PAD = "bench.pad"
COUNT = "bench.count"
RESULT_PAD = 180
"""Characters of padding in ``bench.pad``'s result (~200 bytes of JSON in all)."""


async def noop(data: Any) -> None:
    """Does nothing and returns nothing: what is left is the engine's own cost."""
    return None


async def pad(data: Any) -> dict[str, Any]:
    """W5's body: ``{"i": item index, "r": 180 characters}`` (~200 bytes)."""
    index = data.get("i") if isinstance(data, dict) else None
    return {"i": index, "r": "r" * RESULT_PAD}


async def count(data: Any) -> dict[str, Any]:
    """``{"seed", "n"}`` from the execution input (a root) or the upstream output(s)."""
    return count_step(data)


def count_step(data: Any) -> dict[str, Any]:
    """Pure: a root gets ``{"seed": s}`` -> ``n`` 1; one upstream's output ``{"seed",
    "n"}`` -> ``n + 1``; several as ``{upstream_id: output}`` -> 1 + the sum of theirs."""
    if not isinstance(data, dict):
        raise TypeError(f"bench.count expects an object, got {type(data).__name__}")
    if "seed" in data:
        return {"seed": data["seed"], "n": int(data.get("n", 0)) + 1}
    outputs = list(data.values())
    seeds = {output["seed"] for output in outputs}
    if len(seeds) != 1:
        raise ValueError(f"upstreams disagree on the seed: {sorted(map(str, seeds))}")
    return {"seed": seeds.pop(), "n": 1 + sum(int(output["n"]) for output in outputs)}


_TASKS = {NOOP: noop, PAD: pad, COUNT: count}
for _name, _function in _TASKS.items():
    spane.task(_name)(_function)


def registry() -> TaskRegistry:
    """A private registry holding the benchmark's tasks (for the embedded engine)."""
    own = TaskRegistry()
    for name, function in _TASKS.items():
        own.task(name)(function)
    return own

"""Golden histories: recorded runs of the pure decision core must replay identically.

Each ``tests/unit/golden/*.json`` holds the messages of one scripted run (starting with
the ``StartExecution``), the ``now`` of each step, the exact commands the core produced
and every execution's final meta and node states. Replaying the messages through
``begin``/``decide`` must reproduce all of it, so a refactor of ``spane.core`` cannot
change behaviour unnoticed. Re-record (``python -m tests.unit.golden.record``) only
for an intended change, and review the JSON diff.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

from spane.schemas.events import iso_time
from tests.unit.golden.record import HISTORIES, dumps, history_files, replay

FILES = history_files()


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _diff(expected: Any, actual: Any, label: str) -> str:
    lines = difflib.unified_diff(
        dumps(expected).splitlines(),
        dumps(actual).splitlines(),
        fromfile=f"recorded {label}",
        tofile=f"replayed {label}",
        lineterm="",
    )
    return "\n".join(lines)


def _describe(message: Any) -> str:
    tag = message.get("kind") or message.get("command")
    about = message.get("node_id") or (message.get("timer") or {}).get("id") or ""
    return f"{tag} {about}".strip()


def test_every_history_is_recorded() -> None:
    assert sorted(path.stem for path in FILES) == sorted(HISTORIES)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_history_replays_identically(path: Path) -> None:
    recorded = _load(path)
    replayed = replay(recorded)

    steps = recorded["steps"]
    assert len(replayed["steps"]) == len(steps)
    for index, (want, got) in enumerate(zip(steps, replayed["steps"], strict=True)):
        if want != got:
            label = f"step {index} ({_describe(want['message'])} at now={want['now']})"
            pytest.fail(
                f"{path.name}: {label} differs from the recording\n{_diff(want, got, label)}",
                pytrace=False,
            )
    if recorded["final"] != replayed["final"]:
        diff = _diff(recorded["final"], replayed["final"], "final state")
        pytest.fail(f"{path.name}: final state differs\n{diff}", pytrace=False)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_lifecycle_events_are_derived_from_now_and_what_they_report(path: Path) -> None:
    """Replayed events carry ``time = iso_time(now)`` and ids that never repeat within
    a history (ids are derived, so a re-publication would dedupe)."""
    replayed = replay(_load(path))
    seen: set[str] = set()
    for step in replayed["steps"]:
        for command in step["commands"]:
            if command["command"] != "EmitEvent":
                continue
            event = command["event"]
            assert event["time"] == iso_time(step["now"]), event
            assert event["id"] not in seen, f"event id {event['id']} repeats"
            seen.add(event["id"])

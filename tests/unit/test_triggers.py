"""Event triggers: routing-key patterns, filters, inputs, deterministic execution ids."""

from __future__ import annotations

import pytest

from spane.compiler.compile import compile_plan
from spane.core.triggers import build_index, match_event, normalize_event
from spane.schemas.loader import spec_from_data


def _targets(*triggers):
    spec = spec_from_data(
        {"id": "wf", "triggers": list(triggers), "nodes": [{"id": "a", "type": "noop"}]}
    )
    return build_index([compile_plan(spec)])


@pytest.mark.parametrize(
    ("pattern", "key", "starts"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.deleted", False),
        ("order.*", "order.created", True),
        ("order.*", "order.created.eu", False),
        ("order.#", "order.created.eu", True),
    ],
)
def test_patterns(pattern: str, key: str, starts: bool) -> None:
    matches, problems = match_event(_targets({"event": pattern}), key, {"total": 1}, "m1")
    assert bool(matches) is starts
    assert not problems


def test_filter_and_default_input_is_event_data() -> None:
    targets = _targets({"event": "order.created", "filter": "event.data.total > 0"})
    matches, _ = match_event(targets, "order.created", {"total": 5}, "m1")
    assert [m.input for m in matches] == [{"total": 5}]
    assert match_event(targets, "order.created", {"total": 0}, "m2")[0] == []


def test_trigger_input_mapping_sees_the_event() -> None:
    targets = _targets(
        {"event": "a.b", "input": {"kind": "${ event.type }", "n": "${ event.data.n }"}}
    )
    matches, _ = match_event(targets, "a.b", {"n": 3}, "m1")
    assert matches[0].input == {"kind": "a.b", "n": 3}


def test_cloudevent_body_is_the_event() -> None:
    body = {
        "specversion": "1.0",
        "type": "order.created",
        "id": "x",
        "source": "/s",
        "data": {"v": 1},
    }
    assert normalize_event("whatever", body) is body
    matches, _ = match_event(_targets({"event": "order.*"}), "order.created", body, "m1")
    assert matches[0].input == {"v": 1}


def test_execution_id_is_deterministic_per_message_and_trigger() -> None:
    targets = _targets({"event": "a"}, {"event": "a"})
    first, _ = match_event(targets, "a", 1, "m1")
    again, _ = match_event(targets, "a", 1, "m1")
    other, _ = match_event(targets, "a", 1, "m2")
    assert [m.execution_id for m in first] == [m.execution_id for m in again]
    assert len({m.execution_id for m in first}) == 2
    assert {m.execution_id for m in first}.isdisjoint(m.execution_id for m in other)


def test_filter_error_is_reported_not_raised() -> None:
    targets = _targets({"event": "a", "filter": "event.data.missing > 1"})
    matches, problems = match_event(targets, "a", {}, "m1")
    assert matches == []
    assert "missing" in problems[0].reason

"""JSON round trips of the command lists recorded per applied event."""

from __future__ import annotations

import json

import pytest

from spane.schemas.commands import (
    CancelChild,
    CancelTask,
    CancelTimer,
    Command,
    DispatchTask,
    EmitEvent,
    ExecutionFinished,
    NotifyParent,
    ScheduleTimer,
    StartChild,
)
from spane.schemas.events import execution_event, node_event
from spane.schemas.messages import ChildFinished, StartExecution, TaskMessage
from spane.schemas.state import (
    ErrorInfo,
    ExecutionStatus,
    ParentLink,
    Timer,
    TimerKind,
)
from spane.state.serde import COMMAND_TYPES, decode_commands, encode_commands


def sample_commands() -> list[Command]:
    """At least one command of every type, with nested models and optional fields set."""
    error = ErrorInfo(type="ValueError", message="bad", node_id="b", attempt=2, details={"k": [1]})
    routing_key, event = node_event(
        execution_id="ex-1",
        workflow_id="wf",
        version=3,
        node_id="b",
        attempt=1,
        status="succeeded",
        now=1_700_000_000.25,
        extra={"output": {"n": 1.5}},
    )
    exec_key, exec_event = execution_event(
        execution_id="ex-1", workflow_id="wf", version=3, status="failed", now=1_700_000_001.0
    )
    return [
        DispatchTask(
            TaskMessage(
                task_id="ex-1:b:1",
                execution_id="ex-1",
                workflow_id="wf",
                version=3,
                node_id="b",
                type="http",
                attempt=1,
                input={"a": [1, 2, {"x": None}], "s": "é"},
                request={"method": "POST", "url": "https://example.test"},
                expect={"status": [200]},
                timeout=2.5,
                priority=4,
                dispatched_at=1_700_000_000.123456,
            )
        ),
        DispatchTask(
            TaskMessage(
                task_id="ex-1:c:1",
                execution_id="ex-1",
                workflow_id="wf",
                version=3,
                node_id="c",
                type="function",
                attempt=1,
                function="shop.validate",
            )
        ),
        ScheduleTimer(
            Timer(
                id="ex-1:b:retry",
                execution_id="ex-1",
                kind=TimerKind.RETRY,
                fire_at=1_700_000_010.000001,
                node_id="b",
                attempt=2,
            )
        ),
        CancelTimer("ex-1:b:timeout"),
        CancelTask(task_id="ex-1:b:1", execution_id="ex-1", node_id="b"),
        EmitEvent(routing_key, event, node_level=True),
        EmitEvent(exec_key, exec_event, node_level=False),
        StartChild(
            StartExecution(
                execution_id="ex-1.loop.0",
                workflow_id="wf",
                version=3,
                input=[1, 2],
                idempotency_key="k",
                priority=2,
                parent=ParentLink(execution_id="ex-1", node_id="loop", iteration=0),
                depth=1,
                body="loop",
                context={"item": 1, "index": 0},
            )
        ),
        CancelChild("ex-1.loop.1"),
        NotifyParent(
            ChildFinished(
                execution_id="parent",
                node_id="sub",
                iteration=3,
                child_execution_id="ex-1",
                status=ExecutionStatus.FAILED,
                error=error,
                control="break",
            )
        ),
        ExecutionFinished("ex-1", "wf", ExecutionStatus.SUCCEEDED, {"total": 3, "ok": True}, None),
        ExecutionFinished("ex-1", "wf", ExecutionStatus.FAILED, None, error),
    ]


def test_samples_cover_every_command_type():
    assert {type(c) for c in sample_commands()} == set(COMMAND_TYPES)


@pytest.mark.parametrize("command", sample_commands(), ids=lambda c: type(c).__name__)
def test_each_command_round_trips(command):
    decoded = decode_commands(encode_commands([command]))
    assert decoded == [command]
    assert type(decoded[0]) is type(command)


def test_a_list_round_trips_in_order():
    commands = sample_commands()
    assert decode_commands(encode_commands(commands)) == commands


def test_decoding_accepts_str():
    commands = sample_commands()
    assert decode_commands(encode_commands(commands).decode()) == commands


def test_empty_list():
    assert encode_commands([]) == b"[]"
    assert decode_commands(b"[]") == []


def test_wire_shape_is_type_name_and_fields():
    data = json.loads(encode_commands([CancelTimer("t-1"), sample_commands()[0]]))
    assert data[0] == {"t": "CancelTimer", "v": {"timer_id": "t-1"}}
    assert data[1]["t"] == "DispatchTask"
    assert data[1]["v"]["task"]["task_id"] == "ex-1:b:1"


def test_nested_enums_and_tuples_come_back_typed():
    [finished] = decode_commands(encode_commands([sample_commands()[-1]]))
    assert isinstance(finished, ExecutionFinished)
    assert finished.status is ExecutionStatus.FAILED
    assert isinstance(finished.error, ErrorInfo)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b'{"t": "CancelTimer"}', "JSON array"),
        (b'[{"t": "Nope", "v": {}}]', "unknown command type 'Nope'"),
        (b'[{"t": 3, "v": {}}]', "unknown command type 3"),
        (b'[{"t": "CancelTimer"}]', "a command must be"),
        (b"[1]", "a command must be"),
        (b'[{"t": "CancelTimer", "v": {}, "x": 1}]', "a command must be"),
        (b'[{"t": "CancelTimer", "v": {"timer": 1}}]', "timer_id"),
        (b"[", "EOF"),
    ],
)
def test_bad_payloads_raise_value_error(payload, message):
    with pytest.raises(ValueError, match=message):
        decode_commands(payload)

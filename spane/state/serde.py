"""JSON encoding of the commands recorded with each applied event.

A command list is stored as ``[{"t": "<class name>", "v": {<fields>}}, ...]`` so that a
redelivered event republishes exactly what the first delivery asked for. One pydantic
``TypeAdapter`` per command type, built once at import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, get_args

import pydantic_core
from pydantic import TypeAdapter

from spane.schemas.commands import CancelTimer, Command, ScheduleTimer
from spane.schemas.state import Timer

COMMAND_TYPES: tuple[type[Any], ...] = get_args(Command)
"""Every command class, in the order of the :data:`Command` union."""

_ADAPTERS: dict[str, TypeAdapter[Any]] = {cls.__name__: TypeAdapter(cls) for cls in COMMAND_TYPES}
_TAGS: dict[type[Any], bytes] = {
    cls: b'{"t":"' + cls.__name__.encode() + b'","v":' for cls in COMMAND_TYPES
}


def encode_commands(commands: Sequence[Command]) -> bytes:
    """The JSON array of ``{"t": <class name>, "v": <fields>}`` objects."""
    parts = [
        _TAGS[type(command)] + _ADAPTERS[type(command).__name__].dump_json(command) + b"}"
        for command in commands
    ]
    return b"[" + b",".join(parts) + b"]"


def decode_commands(data: bytes | str) -> list[Command]:
    """Inverse of :func:`encode_commands`; raises ``ValueError`` on anything else."""
    items = pydantic_core.from_json(data)
    if not isinstance(items, list):
        raise ValueError("a command list must be a JSON array")
    return [_decode_one(item) for item in items]


def _decode_one(item: Any) -> Command:
    if not isinstance(item, dict) or set(item) != {"t", "v"}:
        raise ValueError(f'a command must be {{"t": <type>, "v": <fields>}}, got {item!r:.200}')
    adapter = _ADAPTERS.get(item["t"]) if isinstance(item["t"], str) else None
    if adapter is None:
        raise ValueError(f"unknown command type {item['t']!r}")
    command: Command = adapter.validate_python(item["v"])
    return command


def timer_changes(commands: Iterable[Command]) -> tuple[list[str], list[Timer]]:
    """The timer ids ``commands`` cancel and the timers they schedule, the last word per
    timer id winning: what a commit stores with its records, in the same atomic step."""
    last: dict[str, Timer | None] = {}
    for command in commands:
        if isinstance(command, ScheduleTimer):
            last[command.timer.id] = command.timer
        elif isinstance(command, CancelTimer):
            last[command.timer_id] = None
    cancelled = [timer_id for timer_id, timer in last.items() if timer is None]
    return cancelled, [timer for timer in last.values() if timer is not None]

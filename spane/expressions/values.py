"""CEL results as plain JSON-like Python values (DESIGN §2, "Expressions"). Pure.

CEL maps have no order (it varies per evaluation), so maps come back sorted by key.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import cel

__all__ = ["to_plain"]


def _plain_key(key: Any) -> Any:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def to_plain(value: Any) -> Any:
    """A CEL result as JSON-like Python: map keys become strings (and maps are sorted by
    them, for determinism), timestamps ISO text, durations seconds, bytes base64, optionals
    their value (or ``None``)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [to_plain(item) for item in value]
    if isinstance(value, dict):  # CEL maps have no order (it varies per evaluation): sort
        items = sorted(((_plain_key(k), v) for k, v in value.items()), key=lambda kv: kv[0])
        return {key: to_plain(item) for key, item in items}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        return int(seconds) if seconds.is_integer() else seconds
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, cel.OptionalValue):
        return to_plain(value.value()) if value.has_value() else None
    return str(value)

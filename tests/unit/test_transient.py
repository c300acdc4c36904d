"""Which failures mean "a server is unreachable for now" (wait) rather than "this work is
bad" (redeliver, eventually dead-letter)."""

from __future__ import annotations

import pytest

from spane.errors import InvalidMessageError, is_transient


def _driver_error(module: str, name: str, *bases: type[BaseException]) -> BaseException:
    kind: type[BaseException] = type(name, bases or (Exception,), {})
    kind.__module__ = module
    return kind("boom")


def _caused_by(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError("refused"), True),
        (TimeoutError("timed out"), True),
        (_driver_error("redis.exceptions", "ConnectionError"), True),
        (_driver_error("redis.exceptions", "BusyLoadingError"), True),
        (_driver_error("pymongo.errors", "ServerSelectionTimeoutError"), True),
        (_driver_error("pymongo.errors", "AutoReconnect"), True),
        (_driver_error("aiormq.exceptions", "AMQPConnectionError"), True),
        (_caused_by(_driver_error("redis.exceptions", "TimeoutError")), True),
        (_driver_error("redis.exceptions", "ResponseError"), False),  # a bad command
        (_driver_error("pymongo.errors", "DuplicateKeyError"), False),
        (_driver_error("myapp.errors", "ConnectionError"), False),  # not a driver's
        (ValueError("bad value"), False),
        (InvalidMessageError("bad message"), False),
        (KeyError("x"), False),
    ],
)
def test_is_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient

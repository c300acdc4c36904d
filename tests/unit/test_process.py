"""Process-wide tuning: the event loop choice and the garbage collector settings."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
from collections.abc import Iterator

import pytest

from spane import process
from spane.config import Settings, load_settings
from spane.errors import ConfigurationError


@pytest.fixture
def fresh_gc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """tune_gc as if never called in this process; the interpreter's settings restored."""
    threshold = gc.get_threshold()
    monkeypatch.setattr(process, "_gc_tuned", False)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)


def test_tune_gc_raises_the_youngest_threshold_once(fresh_gc: None) -> None:
    gc.set_threshold(700, 10, 10)

    assert process.tune_gc() is True
    assert gc.get_threshold() == (process.GC_YOUNGEST_THRESHOLD, 10, 10)

    gc.set_threshold(700, 10, 10)
    assert process.tune_gc() is False  # once per process: a second call changes nothing
    assert gc.get_threshold() == (700, 10, 10)


def test_tune_gc_keeps_a_higher_threshold_and_a_disabled_collector(fresh_gc: None) -> None:
    gc.set_threshold(50_000, 5, 5)
    process.tune_gc()
    assert gc.get_threshold() == (50_000, 5, 5)

    process._gc_tuned = False
    gc.set_threshold(0, 5, 5)  # automatic collection turned off by the application
    process.tune_gc()
    assert gc.get_threshold()[0] == 0


def test_loop_factory_choices() -> None:
    assert process.loop_factory("asyncio") is None
    factory = process.loop_factory("auto")
    if importlib.util.find_spec("uvloop") is None:
        assert factory is None
        with pytest.raises(ConfigurationError, match="uvloop is not installed"):
            process.loop_factory("uvloop")
    else:
        assert factory is not None
        assert process.loop_factory("uvloop") is factory


def test_run_loop_runs_a_coroutine_on_each_loop() -> None:
    async def loop_type() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert process.run_loop(loop_type(), "asyncio").startswith("asyncio")
    if importlib.util.find_spec("uvloop") is not None:
        assert process.run_loop(loop_type(), "auto").startswith("uvloop")


def test_settings_read_the_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPANE_EVENT_LOOP", "asyncio")
    monkeypatch.setenv("SPANE_GC_TUNING", "false")
    settings = Settings()
    assert settings.event_loop == "asyncio"
    assert settings.gc_tuning is False
    monkeypatch.setenv("SPANE_EVENT_LOOP", "trio")
    with pytest.raises(
        ConfigurationError, match="invalid setting SPANE_EVENT_LOOP: Input should be"
    ):
        load_settings()

"""Sync tasks run on abandonable daemon threads (``spane.workers.threads``).

Python cannot stop a thread: a plain ``def`` task past its timeout fails its attempt
and its thread is abandoned. Nothing may wait for that thread: not a later task (it
would queue behind it), not ``Engine.close``, not the interpreter at exit (``spane run``
would linger until the function returned, and Ctrl-C would print a traceback).
The tasks here block on an event nobody sets, so a process that waited would never exit
and the hang is caught by the subprocess timeout / pytest's timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from spane.workers.threads import TaskThreads

REPO = Path(__file__).resolve().parents[2]
HANG_DETECTOR = 45.0
"""Not a performance bound: a process that waits for the blocked thread never exits."""

TASKS = """\
import threading
import spane

FOREVER = threading.Event()

@spane.task("stuck.forever")
def forever(data: dict) -> dict:
    FOREVER.wait()  # never set: like a sync call that does not return
    return {}
"""

TIMED_OUT = """\
id: stuck
nodes:
  - id: nap
    function: stuck.forever
    timeout: 0.5s
"""

NO_TIMEOUT = """\
id: stuck-long
nodes:
  - id: nap
    function: stuck.forever
"""


def _spane(tmp_path: Path, workflow: str) -> subprocess.Popen[str]:
    (tmp_path / "stucktasks.py").write_text(TASKS, encoding="utf-8")
    (tmp_path / "stuck.yaml").write_text(workflow, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "SPANE_LOG_FORMAT": "text"}
    for name in ("SPANE_AMQP_URL", "SPANE_REDIS_URL", "SPANE_MONGODB_URL"):
        env.pop(name, None)  # embedded
    return subprocess.Popen(
        [sys.executable, "-m", "spane.cli.main", "run", "stuck.yaml", "--import", "stucktasks"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def test_spane_run_exits_after_a_sync_task_times_out(tmp_path: Path) -> None:
    process = _spane(tmp_path, TIMED_OUT)
    try:
        stdout, stderr = process.communicate(timeout=HANG_DETECTOR)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"spane run waited for the abandoned thread:\n{stderr}")

    assert process.returncode == 1, stderr
    assert "timed out after 0.5s" in stderr
    assert "Traceback" not in stderr
    assert stdout == ""


def test_ctrl_c_during_a_sync_task_exits_without_a_traceback(tmp_path: Path) -> None:
    process = _spane(tmp_path, NO_TIMEOUT)
    assert process.stderr is not None
    seen: list[str] = []
    for line in process.stderr:  # the line log: one line per event
        seen.append(line)
        if "node nap started" in line:
            break
    assert any("node nap started" in line for line in seen), "".join(seen)

    process.send_signal(signal.SIGINT)
    try:
        _, rest = process.communicate(timeout=HANG_DETECTOR)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("spane run waited for the task's thread after Ctrl-C")
    stderr = "".join(seen) + rest

    assert process.returncode == 130, stderr
    assert "cancelled (interrupted)" in stderr
    assert "Traceback" not in stderr


def test_a_blocked_call_does_not_hold_back_the_next_one() -> None:
    threads = TaskThreads("test")
    release = threading.Event()
    try:
        stuck = threads.submit(release.wait)
        quick = threads.submit(lambda: 42)

        assert quick.result(timeout=HANG_DETECTOR) == 42
        assert not stuck.done()
    finally:
        release.set()
        threads.shutdown(wait=True)


def test_idle_threads_are_reused() -> None:
    threads = TaskThreads("test")
    try:
        for number in range(5):
            assert threads.submit(pow, number, 2).result(timeout=HANG_DETECTOR) == number**2
        assert threads.threads == 1
    finally:
        threads.shutdown(wait=True)


def test_shutdown_without_wait_abandons_a_busy_daemon_thread() -> None:
    threads = TaskThreads("test")
    release = threading.Event()
    started = threading.Event()

    def busy() -> str:
        started.set()
        release.wait()
        return "late"

    running = threads.submit(busy)
    assert started.wait(timeout=HANG_DETECTOR)
    names = [t for t in threading.enumerate() if t.name.startswith("test_")]
    threads.shutdown(wait=False, cancel_futures=True)

    assert names
    assert all(thread.daemon for thread in names)
    with pytest.raises(RuntimeError, match="after shutdown"):
        threads.submit(lambda: None)
    release.set()
    assert running.result(timeout=HANG_DETECTOR) == "late"  # it ran on, on its own


def test_a_task_exception_reaches_the_caller() -> None:
    threads = TaskThreads("test")
    try:
        with pytest.raises(ZeroDivisionError):
            threads.submit(lambda: 1 / 0).result(timeout=HANG_DETECTOR)
    finally:
        threads.shutdown(wait=True)

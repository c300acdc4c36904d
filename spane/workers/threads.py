"""The threads a worker runs plain ``def`` tasks on, which nothing waits for at exit.

Python cannot stop a thread. A sync task that overruns its ``timeout`` (or whose
attempt is cancelled) has its attempt failed by the orchestrator all the same; its
thread is *abandoned*: it runs on until the function returns, and its result is dropped.
With :class:`concurrent.futures.ThreadPoolExecutor` such a thread would

- hold one of the pool's threads, so later attempts queue behind it, and
- keep the process alive at exit (the interpreter joins those threads), so
  ``spane run`` lingered until the function returned and Ctrl-C then printed a
  traceback from :mod:`threading`.

:class:`TaskThreads` starts a daemon thread whenever no thread is idle (the worker's own
slots bound how many attempts run at once, so no second bound is kept here: an
abandoned thread takes no slot), and :meth:`TaskThreads.shutdown` never has to wait for
a thread still inside a task.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

__all__ = ["TaskThreads"]

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple[Future[Any], Callable[[], Any]]


class TaskThreads(Executor):
    """An executor on daemon threads, one more whenever none is idle."""

    def __init__(self, thread_name_prefix: str = "spane-task") -> None:
        self._prefix = thread_name_prefix
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._numbers = itertools.count()
        self._closed = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._queue.put((future, lambda: fn(*args, **kwargs)))
            if self._idle:
                self._idle -= 1  # that thread takes this item
            else:
                self._start_thread()
        return future

    def _start_thread(self) -> None:
        name = f"{self._prefix}_{next(self._numbers)}"
        thread = threading.Thread(target=self._work, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, call = item
            del item
            if not future.set_running_or_notify_cancel():
                self._ready()
                continue
            try:
                result = call()
            except BaseException as exc:  # the caller gets it, whatever it is
                self._ready()  # idle before the caller hears: its next call reuses us
                future.set_exception(exc)
            else:
                self._ready()
                future.set_result(result)
            del future, call

    def _ready(self) -> None:
        with self._lock:
            self._idle += 1

    @property
    def threads(self) -> int:
        """Threads started so far that have not exited."""
        return sum(thread.is_alive() for thread in self._threads)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; idle threads exit, a busy one after its call.

        ``wait=True`` joins every thread, like the standard executors; the worker stops
        with ``wait=False``, abandoning a thread still inside a task.
        """
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._queue.put(None)  # wakes every idle thread; a busy one exits after its call
        if wait:
            for thread in threads:
                thread.join()

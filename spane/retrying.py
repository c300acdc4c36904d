"""How SPANE retries infrastructure calls: every retry policy, in one place (tenacity).

Each function returns a fresh :class:`tenacity.AsyncRetrying` for one retried
operation; the callers run it as ``await policy(operation)``. The original exception is
raised when a policy gives up or must not retry (never tenacity's ``RetryError``), and
task cancellation (``asyncio.CancelledError``, not an ``Exception``) is never retried.

- :func:`until_deadline` (publishing with confirms, ``bus.rabbit_publish``): while the
  failure is transient and the deadline is ahead; a short pause, then the connection's
  recovery, before each new try.
- :func:`through_outage` (a consumer's handler while a server is unreachable,
  ``bus.rabbit_consumer``): for as long as the outage lasts; pauses grow exponentially
  (``first * 2**(n-1)``, at most ``longest``).
- :func:`forever` (a worker's result flush, the orchestrator's timer loop): any
  ``Exception``, logged, after a fixed pause.

Imports nothing of SPANE: the adapters (bus, state), the workers and the orchestrator
may all use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
    wait_fixed,
)

__all__ = ["AsyncRetrying", "call", "forever", "through_outage", "until_deadline"]

T = TypeVar("T")


async def call(
    policy: Callable[[], AsyncRetrying],
    operation: Callable[..., Awaitable[T]],
    *args: Any,
) -> T:
    """``await operation(*args)`` under the retry ``policy``, which is built only after a
    first failure: the common case (it works) costs one call, not a tenacity run (whose
    per-call overhead showed on every step of the embedded engine). The first failure is
    handed to the policy as its first attempt's outcome, so the policy decides exactly
    as if it had run that attempt."""
    try:
        return await operation(*args)
    except Exception as exc:
        first: Exception | None = exc
    async for attempt in policy():
        with attempt:
            if first is not None:
                failure, first = first, None
                raise failure
            return await operation(*args)
    raise AssertionError("unreachable: a retry policy ends by returning or raising")


def _failure(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome is not None else None


def until_deadline(
    deadline: float,
    *,
    retry_on: type[BaseException],
    pause: float,
    recover: Callable[[BaseException | None], Awaitable[None]],
    on_retry: Callable[[BaseException | None], None],
    give_up: Callable[[BaseException | None], BaseException],
) -> AsyncRetrying:
    """Retry while the failure is a ``retry_on`` and the event loop's clock is before
    ``deadline``: log (``on_retry``), pause ``pause`` seconds (less if the deadline is
    nearer), then ``recover`` (wait for the connection) before the next try. Past the
    deadline, ``give_up(last failure)`` is raised."""
    loop = asyncio.get_running_loop()
    last: list[BaseException | None] = [None]

    async def before_next(state: RetryCallState) -> None:
        if state.attempt_number > 1:
            await recover(last[0])

    def before_sleep(state: RetryCallState) -> None:
        last[0] = _failure(state)
        on_retry(last[0])

    def stop(_: RetryCallState) -> bool:
        return loop.time() >= deadline

    def wait(_: RetryCallState) -> float:
        return min(pause, max(deadline - loop.time(), 0.0))

    def exhausted(state: RetryCallState) -> None:
        failure = _failure(state)
        raise give_up(failure) from failure

    return AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        stop=stop,
        wait=wait,
        before=before_next,
        before_sleep=before_sleep,
        retry_error_callback=exhausted,
        reraise=True,
    )


def through_outage(
    *,
    first: float,
    longest: float,
    keep_trying: Callable[[BaseException], bool],
    on_retry: Callable[[BaseException | None, int, float], None],
) -> AsyncRetrying:
    """Retry for as long as ``keep_trying(error)`` (a server unreachable), waiting
    ``first``, ``2 * first``, ... up to ``longest`` seconds; ``on_retry(error, failures so
    far, next pause)`` is called before each pause."""
    wait = wait_exponential(multiplier=first, min=0, max=longest)

    def before_sleep(state: RetryCallState) -> None:
        on_retry(_failure(state), state.attempt_number, state.upcoming_sleep)

    return AsyncRetrying(
        retry=retry_if_exception(lambda exc: isinstance(exc, Exception) and keep_trying(exc)),
        stop=stop_never,
        wait=wait,
        before_sleep=before_sleep,
        reraise=True,
    )


def forever(pause: float, log: logging.Logger, what: str) -> AsyncRetrying:
    """Retry any ``Exception`` every ``pause`` seconds, logging each failure with its
    traceback as ``"<what> failed; retrying"``."""

    def before_sleep(state: RetryCallState) -> None:
        log.error("%s failed; retrying in %.3gs", what, pause, exc_info=_failure(state))

    return AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        stop=stop_never,
        wait=wait_fixed(pause),
        before_sleep=before_sleep,
        reraise=True,
    )

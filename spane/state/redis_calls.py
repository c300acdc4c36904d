"""How :class:`~spane.state.redis.RedisStateStore` talks to the client: batches of
script calls in one pipeline, and a guard against swallowed cancellations."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from spane.state.redis_connect import AnyRedis

_P = ParamSpec("_P")
_R = TypeVar("_R")

ScriptCall = tuple[list[str], list[Any]]
"""The keys and arguments of one script call."""


def keeps_cancellation(
    method: Callable[_P, Awaitable[_R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Re-raise a cancellation of the calling task that the Redis client swallowed.

    redis-py sends commands through ``asyncio.wait_for`` (it has a socket timeout by
    default), and before Python 3.12 ``wait_for`` returns the result instead of raising
    when the task is cancelled just as the command completes (CPython gh-86296). A task
    cancelled then would run on: a timer loop, say, would never stop. The task's cancel
    count tells: it grew during the call, yet no ``CancelledError`` came out.
    """

    @functools.wraps(method)
    async def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        result = await method(*args, **kwargs)
        if task is not None and task.cancelling() > requested:
            raise asyncio.CancelledError
        return result

    return call


async def run_each(redis: AnyRedis, script: AsyncScript, calls: Sequence[ScriptCall]) -> list[Any]:
    """Run ``script`` once per ``(keys, args)`` in one pipeline; replies in order.

    Not a transaction: each call is atomic on its own. The EVALSHAs go out without
    the SCRIPT EXISTS check a pipeline makes first (one more round trip per batch);
    a server that lost the script (restarted, flushed) refuses them with NOSCRIPT,
    and those calls, which did nothing, run again once the script is loaded.
    """
    replies = await _evalsha_each(redis, script.sha, calls)
    refused = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if refused:
        script.sha = await redis.script_load(script.script)
        again = await _evalsha_each(redis, script.sha, [calls[i] for i in refused])
        for i, reply in zip(refused, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _evalsha_each(redis: AnyRedis, sha: str, calls: Sequence[ScriptCall]) -> list[Any]:
    """One pipeline of EVALSHAs; errors come back as exceptions in the list."""
    async with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return await pipe.execute(raise_on_error=False)

"""Retry policy: whether a failed attempt is retried, and after how long. Pure.

Jitter is derived from a hash of the task id instead of a random draw, so a
redelivered failure computes the same delay and the decision stays deterministic.
"""

from __future__ import annotations

import hashlib

from spane.compiler.plan import RetrySettings
from spane.schemas.messages import TaskFailure


def should_retry(policy: RetrySettings, failure: TaskFailure, attempt: int) -> bool:
    """True when ``attempt`` (1-based) failed with ``failure`` and another is allowed."""
    if failure.non_retryable or failure.type in policy.non_retryable:
        return False
    return attempt < policy.max_attempts


def backoff_delay(policy: RetrySettings, attempt: int, seed: str) -> float:
    """Delay before attempt ``attempt + 1``: exponential, capped, optionally jittered."""
    raw = policy.initial_interval * policy.backoff ** max(attempt - 1, 0)
    delay = min(raw, policy.max_interval)
    if policy.jitter and delay > 0:
        digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
        fraction = int.from_bytes(digest, "big") / 2**64
        delay *= 0.5 + 0.5 * fraction
    return delay


def retry_delay(policy: RetrySettings, failure: TaskFailure, attempt: int, seed: str) -> float:
    """The delay to use: the task's ``retry_after`` wins over the backoff."""
    if failure.retry_after is not None:
        return max(failure.retry_after, 0.0)
    return backoff_delay(policy, attempt, seed)

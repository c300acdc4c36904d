"""Retries: attempts, backoff, ``TaskError`` steering, ``non_retryable`` (DESIGN §2
"Retries and timeouts", §4 "Workers").

The delay the engine decided is read from the ``retrying`` event; the time a test
measures between attempts is only checked from below (how fast it goes is the
benchmark's business)."""

from __future__ import annotations

import time

import pytest

from spane import ExecutionStatus, NodeStatus, TaskError, TaskRegistry

from .helpers import EventLog, deploy, fn, node, wait_node

FAST = {"initial_interval": 0.01, "backoff": 1.0, "jitter": False}


class Attempts:
    """Records the time of every call of a task."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self) -> int:
        self.times.append(time.monotonic())
        return len(self.times)

    @property
    def count(self) -> int:
        return len(self.times)

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


async def test_retry_succeeds_on_the_third_attempt(make_engine):
    reg = TaskRegistry()
    attempts = Attempts()
    seen_attempts: list[int] = []

    @reg.task("flaky")
    async def flaky(data, ctx):
        seen_attempts.append(ctx.attempt)
        if attempts() < 3:
            raise ConnectionError("try again")
        return {"ok": True}

    engine = await make_engine(reg)
    events = await EventLog.attach(engine)
    wf = await deploy(engine, "retry-3", fn("call", "flaky", retry={"max_attempts": 5, **FAST}))

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == {"ok": True}
    assert attempts.count == 3
    assert seen_attempts == [1, 2, 3]
    state = (await engine.status(result.execution_id)).nodes["call"]
    assert state.status == NodeStatus.SUCCEEDED
    assert state.attempt == 3
    retrying = await events.wait_for(result.execution_id, f"node.{wf.id}.call.retrying", count=2)
    assert [e.data["attempt"] for e in retrying] == [1, 2]
    assert {e.data["error"]["type"] for e in retrying} == {"ConnectionError"}


async def test_retries_exhausted_fail_the_node_with_the_last_error(make_engine):
    reg = TaskRegistry()
    attempts = Attempts()

    @reg.task("always_fails")
    async def always_fails(data):
        n = attempts()
        raise RuntimeError(f"failure {n}")

    engine = await make_engine(reg)
    wf = await deploy(
        engine, "retry-exhausted", fn("call", "always_fails", retry={"max_attempts": 3, **FAST})
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert attempts.count == 3
    assert result.error is not None
    assert result.error.type == "RuntimeError"
    assert result.error.message == "failure 3"
    assert result.error.node_id == "call"
    assert result.error.attempt == 3
    state = (await engine.status(result.execution_id)).nodes["call"]
    assert (state.status, state.attempt) == (NodeStatus.FAILED, 3)


async def test_no_retry_policy_means_a_single_attempt(make_engine):
    reg = TaskRegistry()
    attempts = Attempts()

    @reg.task("fails")
    async def fails(data):
        attempts()
        raise RuntimeError("no")

    engine = await make_engine(reg)
    wf = await deploy(engine, "no-retry", fn("call", "fails"))

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert attempts.count == 1


async def test_backoff_grows_exponentially_and_is_capped(make_engine):
    reg = TaskRegistry()
    attempts = Attempts()

    @reg.task("fails")
    async def fails(data):
        attempts()
        raise RuntimeError("no")

    engine = await make_engine(reg)
    events = await EventLog.attach(engine)
    policy = {
        "max_attempts": 4,
        "initial_interval": "50ms",
        "backoff": 3.0,
        "max_interval": "200ms",
        "jitter": False,
    }
    wf = await deploy(engine, "backoff", fn("call", "fails", retry=policy))

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert attempts.count == 4
    retrying = await events.wait_for(result.execution_id, f"node.{wf.id}.call.retrying", count=3)
    # 50 ms, then 150 ms, then 450 ms capped to 200 ms
    assert [e.data["delay"] for e in retrying] == pytest.approx([0.05, 0.15, 0.2])
    first, second, third = attempts.gaps()
    # each next attempt came that long after the failure, at the earliest
    assert first >= 0.045
    assert second >= 0.14
    assert third >= 0.19


async def test_non_retryable_task_error_stops_retries(make_engine):
    reg = TaskRegistry()
    attempts = Attempts()

    @reg.task("refuses")
    async def refuses(data):
        attempts()
        raise TaskError("card declined", non_retryable=True, details={"code": 51})

    engine = await make_engine(reg)
    wf = await deploy(
        engine, "non-retryable", fn("charge", "refuses", retry={"max_attempts": 5, **FAST})
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert attempts.count == 1
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("TaskError", "card declined")
    assert result.error.details == {"code": 51}
    assert result.error.attempt == 1


async def test_task_error_type_names_the_error(make_engine):
    reg = TaskRegistry()

    @reg.task("typed")
    async def typed(data):
        raise TaskError("out of stock", type="OutOfStock", non_retryable=True)

    engine = await make_engine(reg)
    wf = await deploy(engine, "typed-error", fn("reserve", "typed"))

    result = await wf.run()

    assert result.error is not None
    assert result.error.type == "OutOfStock"


async def test_retry_after_overrides_the_backoff_delay(make_engine):
    reg = TaskRegistry()
    attempts = Attempts()

    @reg.task("rate_limited")
    async def rate_limited(data):
        if attempts() == 1:
            raise TaskError("slow down", retry_after=0.05)
        return "done"

    engine = await make_engine(reg)
    events = await EventLog.attach(engine)
    # the policy alone would wait 30 s before the second attempt
    policy = {"max_attempts": 2, "initial_interval": "30s", "jitter": False}
    wf = await deploy(engine, "retry-after", fn("call", "rate_limited", retry=policy))

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output == "done"
    [retrying] = await events.wait_for(result.execution_id, f"node.{wf.id}.call.retrying")
    assert retrying.data["delay"] == pytest.approx(0.05)
    [gap] = attempts.gaps()
    assert gap >= 0.045


async def test_retry_after_is_honoured_when_longer_than_the_backoff(make_engine):
    reg = TaskRegistry()
    attempts = Attempts()

    @reg.task("rate_limited")
    async def rate_limited(data):
        if attempts() == 1:
            raise TaskError("slow down", retry_after=0.2)
        return "done"

    engine = await make_engine(reg)
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine, "retry-after-long", fn("call", "rate_limited", retry={"max_attempts": 2, **FAST})
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.SUCCEEDED
    [retrying] = await events.wait_for(result.execution_id, f"node.{wf.id}.call.retrying")
    assert retrying.data["delay"] == pytest.approx(0.2)
    [gap] = attempts.gaps()
    assert gap >= 0.19


@pytest.mark.parametrize(
    ("error", "expected_attempts"),
    [(ValueError, 1), (RuntimeError, 3)],
)
async def test_non_retryable_policy_lists_error_types(make_engine, error, expected_attempts):
    reg = TaskRegistry()
    attempts = Attempts()

    @reg.task("fails")
    async def fails(data):
        attempts()
        raise error("nope")

    engine = await make_engine(reg)
    policy = {"max_attempts": 3, "non_retryable": ["ValueError"], **FAST}
    wf = await deploy(engine, "policy-types", fn("call", "fails", retry=policy))

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert attempts.count == expected_attempts
    assert result.error is not None
    assert result.error.type == error.__name__


async def test_defaults_retry_is_inherited_and_overridden_field_by_field(make_engine):
    reg = TaskRegistry()
    counts: dict[str, int] = {}

    @reg.task("fails")
    async def fails(data, ctx):
        counts[ctx.node_id] = counts.get(ctx.node_id, 0) + 1
        raise RuntimeError("no")

    engine = await make_engine(reg)
    wf = await deploy(
        engine,
        "defaults-retry",
        fn("inherits", "fails"),
        fn("overrides", "fails", retry={"max_attempts": 2}),
        fn("handler", "fails", "inherits.error", "overrides.error", join="any"),
        defaults={"retry": {"max_attempts": 3, **FAST}},
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    assert counts["inherits"] == 3
    assert counts["overrides"] == 2
    # the handler itself failed (unhandled) with the inherited policy
    assert counts["handler"] == 3
    assert result.error is not None
    assert result.error.node_id == "handler"


async def test_control_nodes_are_not_retried(make_engine):
    engine = await make_engine(TaskRegistry())
    events = await EventLog.attach(engine)
    wf = await deploy(
        engine,
        "control-no-retry",
        node("stop", "fail", error="no"),
        defaults={"retry": {"max_attempts": 5, **FAST}},
    )

    result = await wf.run()

    assert result.status == ExecutionStatus.FAILED
    state = (await engine.status(result.execution_id)).nodes["stop"]
    assert state.attempt == 1
    assert events.find(result.execution_id, f"node.{wf.id}.stop.retrying") == []


async def test_retried_node_waits_in_between_and_reports_waiting(make_engine):
    reg = TaskRegistry()
    attempts = Attempts()

    @reg.task("flaky")
    async def flaky(data):
        if attempts() == 1:
            raise RuntimeError("first try fails")
        return "second"

    engine = await make_engine(reg)
    policy = {"max_attempts": 2, "initial_interval": "300ms", "jitter": False}
    wf = await deploy(engine, "waiting-retry", fn("call", "flaky", retry=policy))

    execution_id = await wf.start()
    state = await wait_node(engine, execution_id, "call", NodeStatus.WAITING)
    assert state.attempt == 1
    assert state.error is not None
    assert state.error.message == "first try fails"
    result = await engine.wait(execution_id, 10)
    assert result.output == "second"

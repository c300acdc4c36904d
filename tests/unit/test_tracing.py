"""OpenTelemetry traces in embedded mode: one execution is one trace (``tracing``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from spane import Engine, TaskError
from spane.bus.codec import decode_task
from spane.bus.rabbit_messages import inbox_outgoing, task_outgoing, traced_decoder
from spane.bus.topology import Topology
from spane.observability import tracing, tracing_setup
from spane.observability.logs import SPAN_ID, TRACE_ID
from spane.schemas.messages import TaskMessage, TaskResult
from spane.workers.registry import TaskRegistry

WORKFLOW = {
    "id": "traced",
    "nodes": [
        {"id": "a", "function": "t.ok"},
        {"id": "b", "function": "t.ok", "after": ["a"]},
        {"id": "c", "function": "t.boom", "after": ["a"]},
        {"id": "d", "function": "t.ok", "after": ["c.error"]},
    ],
}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider, messaging_system="memory")
    try:
        yield exporter
    finally:
        tracing.disable()


def _registry() -> TaskRegistry:
    registry = TaskRegistry()

    @registry.task("t.ok")
    async def ok(data: Any) -> dict[str, bool]:
        return {"ok": True}

    @registry.task("t.boom")
    async def boom(data: Any) -> None:
        raise TaskError("it broke", non_retryable=True)

    return registry


async def _run_workflow() -> str:
    async with Engine(registry=_registry()) as engine:
        await engine.register(WORKFLOW)
        result = await engine.run("traced", {"n": 1}, timeout=30)
        assert result.succeeded, result
        return result.execution_id


def _of(spans: list[ReadableSpan], execution_id: str) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get("spane.execution.id") == execution_id]


async def test_one_execution_is_one_trace(spans: InMemorySpanExporter) -> None:
    execution_id = await _run_workflow()
    finished = list(spans.get_finished_spans())
    mine = _of(finished, execution_id)
    by_id = {s.context.span_id: s for s in finished}

    # the client's start, the execution, dispatches, worker runs, results, the finish
    names = {s.name for s in mine}
    assert {
        "publish spane.orchestrator",
        "spane.execution",
        "publish spane.tasks",
        "process spane.tasks",
        "process spane.orchestrator",
        "spane.execution.finished",
    } <= names
    assert len({s.context.trace_id for s in mine}) == 1

    execution = next(s for s in mine if s.name == "spane.execution")
    start = next(s for s in mine if s.name == "publish spane.orchestrator")
    assert execution.parent is not None
    assert execution.parent.span_id == start.context.span_id
    assert start.kind is SpanKind.PRODUCER

    runs = [s for s in mine if s.name == "process spane.tasks"]
    assert sorted(attrs(s)["spane.node.id"] for s in runs) == ["a", "b", "c", "d"]
    for run in runs:
        assert run.kind is SpanKind.CONSUMER
        assert run.parent is not None
        dispatch = by_id[run.parent.span_id]
        assert dispatch.name == "publish spane.tasks"
        assert dispatch.kind is SpanKind.PRODUCER
        assert attrs(dispatch)["spane.node.id"] == attrs(run)["spane.node.id"]
        assert attrs(dispatch)["messaging.operation.type"] == "publish"
        assert dispatch.parent is not None
        assert dispatch.parent.span_id == execution.context.span_id
    applied = [s for s in mine if s.name == "process spane.orchestrator"]
    assert {by_id[s.parent.span_id].name for s in applied if s.parent} == {"process spane.tasks"}
    assert len(applied) == 4


async def test_a_failing_task_records_its_exception(spans: InMemorySpanExporter) -> None:
    execution_id = await _run_workflow()
    runs = {
        attrs(s)["spane.node.id"]: s
        for s in _of(list(spans.get_finished_spans()), execution_id)
        if s.name == "process spane.tasks"
    }
    failed = runs["c"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "it broke"
    exceptions = [e for e in failed.events if e.name == "exception"]
    assert exceptions
    assert attrs(exceptions[0])["exception.type"] == "spane.errors.TaskError"
    assert attrs(exceptions[0])["exception.message"] == "it broke"
    assert runs["a"].status.status_code is StatusCode.UNSET
    assert attrs(runs["a"])["messaging.system"] == "memory"
    assert attrs(runs["a"])["spane.attempt"] == 1
    assert attrs(runs["a"])["spane.workflow.id"] == "traced"


def attrs(item: Any) -> dict[str, Any]:
    return dict(item.attributes or {})


async def test_a_start_continues_the_callers_trace(spans: InMemorySpanExporter) -> None:
    provider_tracer = tracing._t()
    with provider_tracer.start_as_current_span("caller") as caller:
        execution_id = await _run_workflow()
    mine = _of(list(spans.get_finished_spans()), execution_id)
    assert {s.context.trace_id for s in mine} == {caller.get_span_context().trace_id}


async def test_a_trigger_with_traceparent_continues_the_producers_trace(
    spans: InMemorySpanExporter,
) -> None:
    workflow = {**WORKFLOW, "id": "on-event", "triggers": [{"event": "thing.happened"}]}
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    async with Engine(registry=_registry()) as engine:
        await engine.register(workflow)
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def on_event(_: str, event: Any) -> None:
            if event.data.get("status") == "succeeded" and not done.done():
                done.set_result(event.subject)

        await engine.subscribe("execution.on-event.*", on_event)
        await engine.bus.publish_trigger(
            "thing.happened", {"n": 1}, headers={"traceparent": parent}
        )
        execution_id = await asyncio.wait_for(done, 30)
    mine = _of(list(spans.get_finished_spans()), execution_id)
    assert mine
    assert {format(s.context.trace_id, "032x") for s in mine} == {trace_id}
    received = next(s for s in spans.get_finished_spans() if s.name == "process spane.triggers")
    assert received.parent is not None
    assert format(received.parent.span_id, "016x") == "00f067aa0ba902b7"


async def test_a_batch_span_links_the_results_it_applied(spans: InMemorySpanExporter) -> None:
    execution_id = await _run_workflow()
    finished = list(spans.get_finished_spans())
    applied = {
        s.context.span_id
        for s in _of(finished, execution_id)
        if s.name == "process spane.orchestrator"
    }
    batches = [s for s in finished if s.name == "spane.orchestrator.batch"]
    linked = {link.context.span_id for s in batches for link in s.links}
    assert applied <= linked
    assert all(s.parent is None for s in batches)


def _task(**extra: Any) -> TaskMessage:
    return TaskMessage(
        task_id="e1:a:1",
        execution_id="e1",
        workflow_id="w",
        version=1,
        node_id="a",
        type="function",
        attempt=1,
        **extra,
    )


def test_trace_context_travels_in_amqp_headers_not_in_the_body() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    task = _task(traceparent=traceparent, tracestate="k=v")
    outgoing = task_outgoing(Topology("spane"), task)
    assert b"traceparent" not in outgoing.body
    assert outgoing.properties.headers is not None
    assert outgoing.properties.headers["traceparent"] == traceparent
    assert outgoing.properties.headers["tracestate"] == "k=v"

    class Incoming:
        body = outgoing.body
        headers = {"traceparent": traceparent.encode(), "tracestate": "k=v"}

    decoded = traced_decoder(decode_task)(Incoming())  # type: ignore[arg-type]
    assert decoded.traceparent == traceparent
    assert decoded.tracestate == "k=v"
    untraced = inbox_outgoing(Topology("spane"), _result(), "m1")
    assert "traceparent" not in (untraced.properties.headers or {})
    result = _result().model_copy(update={"traceparent": traceparent})
    traced = inbox_outgoing(Topology("spane"), result, "m2")
    assert (traced.properties.headers or {})["traceparent"] == traceparent
    assert b"traceparent" not in traced.body


@pytest.mark.parametrize(
    ("environ", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, False),
    ],
)
def test_tracing_is_off_unless_the_otel_variables_ask(environ: dict[str, str], on: bool) -> None:
    assert tracing_setup.wanted(environ) is on


async def test_off_by_default_no_span_and_messages_untouched() -> None:
    assert not tracing.ENABLED
    task = _task()
    with tracing.dispatching([task]) as tasks, tracing.running(task) as run:
        assert run.finish(_result()) == _result()
        assert list(tasks) == [task]
    assert tasks[0].traceparent is None
    execution_id = await _run_workflow()
    assert execution_id


def _result() -> TaskResult:
    return TaskResult(task_id="e1:a:1", execution_id="e1", node_id="a", attempt=1, ok=True)


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_configure_uses_the_sdk_env_handling_and_the_default_service_name() -> None:
    code = (
        "from spane.observability import tracing\n"
        "from spane.observability import tracing_setup\n"
        "assert tracing_setup.configure('spane-orchestrator')\n"
        "from opentelemetry import trace\n"
        "print(trace.get_tracer_provider().resource.attributes['service.name'])\n"
        "with tracing._t().start_as_current_span('hello'): pass\n"
        "tracing.shutdown()\n"
    )
    default = _python(code, OTEL_TRACES_EXPORTER="console")
    assert default.returncode == 0, default.stderr
    assert default.stdout.splitlines()[0] == "spane-orchestrator"
    assert '"name": "hello"' in default.stdout  # the console exporter the SDK picked
    named = _python(code, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="mine")
    assert named.stdout.splitlines()[0] == "mine", named.stderr


def test_without_opentelemetry_nothing_breaks() -> None:
    """The package absent (imports of opentelemetry fail): tracing stays off, with a warning."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.startswith('opentelemetry'): raise ImportError('no ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from spane.observability import tracing\n"
        "from spane.observability import tracing_setup\n"
        "print(tracing_setup.configure('spane-worker-function'), tracing.ENABLED)\n"
    )
    result = _python(code, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False False"
    assert "spane[otel]" in result.stderr


async def test_a_tasks_log_lines_carry_its_trace_and_span_ids(spans: InMemorySpanExporter) -> None:
    registry = TaskRegistry()

    @registry.task("t.ids")
    async def ids(data: Any) -> dict[str, str | None]:
        return {"trace_id": TRACE_ID.get(), "span_id": SPAN_ID.get()}

    async with Engine(registry=registry) as engine:
        await engine.register({"id": "ids", "nodes": [{"id": "a", "function": "t.ids"}]})
        result = await engine.run("ids", {}, timeout=30)
    (run,) = [s for s in spans.get_finished_spans() if s.name == "process spane.tasks"]
    assert result.output == {
        "trace_id": format(run.context.trace_id, "032x"),
        "span_id": format(run.context.span_id, "016x"),
    }
    assert TRACE_ID.get() is None


def test_an_api_call_with_traceparent_continues_the_callers_trace(
    spans: InMemorySpanExporter,
) -> None:
    from fastapi.testclient import TestClient

    from spane.api import create_app

    trace_id = "5bf92f3577b34da6a3ce929d0e0e4736"
    header = f"00-{trace_id}-10f067aa0ba902b7-01"
    app = create_app(Engine(registry=_registry()))
    with TestClient(app) as client:
        assert client.post("/v1/workflows", json=WORKFLOW).status_code == 201
        response = client.post(
            "/v1/workflows/traced/executions", json={"input": {}}, headers={"traceparent": header}
        )
        assert response.status_code == 201, response.text
        execution_id = response.json()["execution_id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/executions/{execution_id}").json()["status"] != "succeeded":
            assert time.monotonic() < deadline, "the execution did not finish"
            time.sleep(0.02)
    mine = _of(list(spans.get_finished_spans()), execution_id)
    assert mine
    assert {format(s.context.trace_id, "032x") for s in mine} == {trace_id}
    start = next(s for s in mine if s.name == "publish spane.orchestrator")
    assert start.parent is not None
    assert format(start.parent.span_id, "016x") == "10f067aa0ba902b7"

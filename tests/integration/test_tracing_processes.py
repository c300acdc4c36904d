"""Traces across real processes: ``spane orchestrator`` and ``spane worker`` export OTLP
(http/protobuf) to a small receiver run by the test; one execution is one trace, linked
parent -> child through RabbitMQ, and a trigger carrying ``traceparent`` continues the
producer's trace."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spane import Engine
from spane.bus.rabbit import RabbitBus
from spane.config import Settings
from spane.observability import tracing
from spane.state.mongo import MongoDefinitionStore
from spane.state.redis import RedisStateStore
from tests.chaos.conftest import WORKFLOW, Deployment, _env, expected_output
from tests.servers import Namespace, require_amqp, require_mongodb, require_redis

WAIT = 60.0
pytestmark = pytest.mark.timeout(200)


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    status: int


def _value(value: AnyValue) -> Any:
    field = value.WhichOneof("value")
    return getattr(value, field) if field else None


class Receiver:
    """An OTLP/HTTP trace receiver: ``POST /v1/traces`` with a protobuf body."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, request: ExportTraceServiceRequest) -> None:
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=str(resource.get("service.name")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            status=span.status.code,
                        )
                    )
        with self.lock:
            self.spans.extend(found)

    def of(self, execution_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.attributes.get("spane.execution.id") == execution_id]

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self.lock:
            return [s for s in self.spans if s.trace_id == trace_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def client_spans() -> Iterator[InMemorySpanExporter]:
    """The test process traces too (in memory): its start is the trace's first span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    try:
        yield exporter
    finally:
        tracing.disable()


@pytest.fixture
async def deployment(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Deployment]:
    amqp, redis, mongodb = require_amqp(), require_redis(), require_mongodb()
    ns = Namespace.new("spanetrace")
    env = {
        **_env(ns, amqp, redis, mongodb),
        "SPANE_METRICS_PORT": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    for name in ("OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        env.pop(name, None)
    deploy = Deployment(ns, env, tmp_path)
    deploy.orchestrator()
    deploy.worker()
    try:
        yield deploy
    finally:
        deploy.stop_all()
        await ns.cleanup(
            amqp_url=amqp, redis_url=redis, mongodb_url=mongodb, task_types=["function"]
        )


@pytest.fixture
async def client(
    deployment: Deployment, client_spans: InMemorySpanExporter
) -> AsyncIterator[Engine]:
    env, ns = deployment.env, deployment.namespace
    engine = Engine(
        settings=Settings(_env_file=None, namespace=ns.name),
        bus=RabbitBus(env["SPANE_AMQP_URL"], namespace=ns.name, connection_name="trace-client"),
        state=RedisStateStore(env["SPANE_REDIS_URL"], namespace=ns.name),
        definitions=MongoDefinitionStore(env["SPANE_MONGODB_URL"], database=ns.database),
        pools=[],
        run_orchestrator=False,
    )
    await engine.open()
    try:
        yield engine
    finally:
        await engine.close()


async def _until(check: Callable[[], bool], deployment: Deployment, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not seen in {WAIT} s\n{deployment.log_tail()}")
        await asyncio.sleep(0.1)


def _complete(spans: list[ReceivedSpan], nodes: int, ns: str) -> bool:
    names = [s.name for s in spans]
    return (
        "spane.execution.finished" in names
        and names.count(f"process {ns}.tasks") >= nodes
        and names.count(f"process {ns}.orchestrator") >= nodes
    )


def _check_tree(spans: list[ReceivedSpan], nodes: int, ns: str) -> dict[str, ReceivedSpan]:
    """One trace; worker spans children of orchestrator dispatch spans; results children
    of worker spans; dispatches children of the execution span."""
    assert len({s.trace_id for s in spans}) == 1, spans
    by_id = {s.span_id: s for s in spans}
    execution = next(s for s in spans if s.name == "spane.execution")
    assert execution.service == "spane-orchestrator"
    runs = [s for s in spans if s.name == f"process {ns}.tasks"]
    assert sorted(s.attributes["spane.node.id"] for s in runs) == sorted(
        n["id"] for n in WORKFLOW["nodes"]
    )
    assert len(runs) == nodes
    for run in runs:
        assert run.service == "spane-worker-function"
        dispatch = by_id[run.parent_id]
        assert dispatch.name == f"publish {ns}.tasks"
        assert dispatch.service == "spane-orchestrator"
        assert dispatch.attributes["spane.node.id"] == run.attributes["spane.node.id"]
        assert dispatch.attributes["messaging.system"] == "rabbitmq"
        assert dispatch.attributes["messaging.rabbitmq.destination.routing_key"] == "function"
        assert dispatch.parent_id == execution.span_id
    for applied in (s for s in spans if s.name == f"process {ns}.orchestrator"):
        assert applied.service == "spane-orchestrator"
        assert by_id[applied.parent_id].name == f"process {ns}.tasks"
    return by_id


async def test_one_execution_is_one_trace_across_processes(
    deployment: Deployment,
    client: Engine,
    receiver: Receiver,
    client_spans: InMemorySpanExporter,
) -> None:
    ns = deployment.namespace.name
    await client.register(WORKFLOW)
    result = await client.run("chaos", {"n": 2}, timeout=WAIT)
    assert result.succeeded, deployment.log_tail()
    assert result.output == expected_output(2)
    nodes = len(WORKFLOW["nodes"])
    await _until(
        lambda: _complete(receiver.of(result.execution_id), nodes, ns), deployment, "spans"
    )

    spans = receiver.of(result.execution_id)
    _check_tree(spans, nodes, ns)
    (start,) = [s for s in client_spans.get_finished_spans() if s.name.startswith("publish")]
    assert {s.trace_id for s in spans} == {format(start.context.trace_id, "032x")}
    execution = next(s for s in spans if s.name == "spane.execution")
    assert execution.parent_id == format(start.context.span_id, "016x")


async def test_a_trigger_with_traceparent_continues_the_producers_trace(
    deployment: Deployment, client: Engine, receiver: Receiver
) -> None:
    ns = deployment.namespace.name
    tracing.disable()  # this producer is any AMQP client: only its header says where it is
    await client.register({**WORKFLOW, "id": "chaos-on-event", "triggers": [{"event": "go.now"}]})
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    header = f"00-{trace_id}-{parent}-01"
    await client.bus.publish_trigger("go.now", {"n": 3}, headers={"traceparent": header})
    nodes = len(WORKFLOW["nodes"])
    await _until(lambda: _complete(receiver.in_trace(trace_id), nodes, ns), deployment, "spans")

    spans = receiver.in_trace(trace_id)
    received = next(s for s in spans if s.name == f"process {ns}.triggers")
    assert received.parent_id == parent
    assert received.attributes["messaging.rabbitmq.destination.routing_key"] == "go.now"
    execution = next(s for s in spans if s.name == "spane.execution")
    assert execution.parent_id == received.span_id
    execution_id = execution.attributes["spane.execution.id"]
    _check_tree(receiver.of(execution_id), nodes, ns)
    finished = next(s for s in spans if s.name == "spane.execution.finished")
    assert finished.attributes["spane.execution.status"] == "succeeded"

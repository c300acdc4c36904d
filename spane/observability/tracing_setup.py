"""Turning traces on from the standard ``OTEL_*`` variables, and the API's middleware.

:func:`configure` turns tracing on only when the variables ask for it:
``OTEL_TRACES_EXPORTER`` (other than ``none``) or an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), and not
``OTEL_SDK_DISABLED=true``. Everything else is the SDK's own handling of those variables:
the exporters (``otlp`` -> gRPC or ``http/protobuf`` by ``OTEL_EXPORTER_OTLP_PROTOCOL``,
``console``, ...), their endpoint, headers and timeouts, the sampler
(``OTEL_TRACES_SAMPLER``), the batch processor (``OTEL_BSP_*``) and the resource
(``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``; the service name defaults to what
the process is: ``spane-orchestrator``, ``spane-worker-<pool>``, ``spane-api``,
``spane-dev``, ``spane-embedded``, ``spane-client``). Without the ``opentelemetry``
packages (``pip install 'spane[otel]'``) tracing stays off with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from spane.observability import tracing

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["TraceContextMiddleware", "configure", "wanted"]

log = logging.getLogger("spane.tracing")


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def configure(
    service: str, *, namespace: str = "spane", messaging_system: str = "rabbitmq"
) -> bool:
    """Turn tracing on for this process when the ``OTEL_*`` variables ask for it;
    ``service`` is the default service name. True when tracing is on. A second call
    keeps the first configuration."""
    if tracing.ENABLED:
        return True
    if not wanted():
        return False
    try:
        provider = _provider_from_env(service)
    except ImportError as exc:
        log.warning(
            "OTEL_* variables ask for traces but %s; tracing stays off (pip install 'spane[otel]')",
            exc,
        )
        return False
    except Exception as exc:
        log.warning("tracing stays off: the OTEL_* configuration failed: %s", exc)
        return False
    from opentelemetry import trace

    trace.set_tracer_provider(provider)  # user code's spans join SPANE's traces
    tracing.use(provider, namespace=namespace, messaging_system=messaging_system)
    return True


def _provider_from_env(service: str) -> TracerProvider:
    """A tracer provider built by the SDK's own reading of the ``OTEL_*`` variables."""
    from opentelemetry.sdk._configuration import (
        _get_exporter_entry_point,
        _get_exporter_names,
        _import_exporters,
    )
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if os.environ.get("OTEL_TRACES_EXPORTER"):
        names = _get_exporter_names("traces")
    else:  # only an endpoint: OTLP, by OTEL_EXPORTER_OTLP_PROTOCOL (gRPC by default)
        names = [_get_exporter_entry_point("otlp", "traces")]
    exporters, _, _ = _import_exporters(names, [], [])
    named = OTELResourceDetector().detect().attributes.get(SERVICE_NAME)
    provider = TracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: service}))
    for exporter in exporters.values():
        provider.add_span_processor(BatchSpanProcessor(exporter()))
    return provider


class TraceContextMiddleware:
    """ASGI middleware: a request with a ``traceparent`` header runs in the caller's
    trace context, so the executions it starts continue the caller's trace."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not tracing.ENABLED or scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        found = {k: v for k, v in scope.get("headers", ()) if k in (b"traceparent", b"tracestate")}
        if b"traceparent" not in found:
            await self.app(scope, receive, send)
            return
        from opentelemetry import context

        token = context.attach(tracing.context_of(found[b"traceparent"], found.get(b"tracestate")))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)

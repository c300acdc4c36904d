"""Seeing inside SPANE processes: Prometheus metrics (:mod:`.metrics`), the hooks the
adapters call (:mod:`.hooks`), structured logs (:mod:`.logs`), readiness checks
(:mod:`.health`), the small HTTP server that serves them (:mod:`.server`) and
OpenTelemetry traces (:mod:`.tracing`, turned on from ``OTEL_*`` by :mod:`.tracing_setup`).

It imports nothing of SPANE but ``config``, ``errors`` and ``schemas``; the pure parts
never import it. Every instrument is optional: a service or worker given no
:class:`~spane.observability.metrics.Metrics` records nothing.
"""

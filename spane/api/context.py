"""What the routes share: the engine, the event hub and the API settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request, WebSocket

from spane.api.auth import ApiKeys
from spane.api.hub import EventHub
from spane.engine import Engine

BODY_SLACK_BYTES = 64 * 1024
"""Room for the envelope around a value of the engine's largest size (``max_value_bytes``)."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    max_body_bytes: int | None = None
    """Largest request body; None: the engine's ``max_value_bytes`` + :data:`BODY_SLACK_BYTES`."""
    history_per_execution: int = 1000
    """Lifecycle events kept per execution for ``GET /v1/executions/{id}/events``."""
    history_executions: int = 10_000
    """Executions whose event history is kept (least recently active dropped first)."""
    websocket_queue: int = 1000
    """Events buffered per WebSocket client; a client further behind is disconnected."""
    api_keys: ApiKeys | None = None
    """Keys every ``/v1`` call needs (:mod:`spane.api.auth`); None: those of the engine's
    settings (``SPANE_API_KEYS``, ``SPANE_API_KEYS_FILE``), if any."""


@dataclass(frozen=True, slots=True)
class ApiContext:
    engine: Engine
    hub: EventHub
    config: ApiConfig


def _context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.spane)


def websocket_context(websocket: WebSocket) -> ApiContext:
    return cast(ApiContext, websocket.app.state.spane)


Context = Annotated[ApiContext, Depends(_context)]

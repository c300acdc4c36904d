"""WebSocket ``/v1/events?filter=<pattern>``: lifecycle events, live.

Each lifecycle CloudEvent whose routing key matches ``filter`` (AMQP topic syntax:
``*`` one word, ``#`` any number; default ``#``) is sent as one JSON text frame, the
same document as on the ``spane.events`` exchange. Messages from the client are
ignored. A client that falls ``websocket_queue`` events behind is disconnected with
close code 1013 (try again later); an invalid filter closes with 1008.

``?after=<event id>`` resumes a stream: the events after that one (from the API
process's recent log, the last 10,000 events by default) are sent first, then live
ones. An id no longer in the log closes with 1008 and says so: the client then reads
what it missed from ``GET /v1/executions/{id}/events`` and reconnects without ``after``.
"""

from __future__ import annotations

import contextlib
import re

import anyio
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from spane.api.context import websocket_context
from spane.api.hub import OVERFLOW, Listener

router = APIRouter(tags=["events"])

_PATTERN = re.compile(r"^(?:[*#]|[A-Za-z0-9_\-]+)(?:\.(?:[*#]|[A-Za-z0-9_\-]+))*$")
MAX_PATTERN = 512


def valid_pattern(pattern: str) -> bool:
    return len(pattern) <= MAX_PATTERN and _PATTERN.match(pattern) is not None


async def _send(websocket: WebSocket, listener: Listener) -> None:
    while True:
        encoded = await listener.queue.get()
        if encoded is OVERFLOW:
            await websocket.close(code=1013, reason="fell behind: events were dropped")
            return
        await websocket.send_text(encoded)


async def _until_disconnect(websocket: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


@router.websocket("/v1/events")
async def events(websocket: WebSocket, filter: str = "#", after: str | None = None) -> None:
    await websocket.accept()
    if not valid_pattern(filter):
        await websocket.close(code=1008, reason=f"invalid filter {filter[:100]!r}")
        return
    hub = websocket_context(websocket).hub
    listener = hub.listen(filter) if after is None else hub.listen_after(filter, after)
    if listener is None:
        reason = f"event {str(after)[:80]!r} is not in the recent history; resume without after"
        await websocket.close(code=1008, reason=reason)
        return
    try:
        async with anyio.create_task_group() as group:

            async def until_disconnect() -> None:
                await _until_disconnect(websocket)
                group.cancel_scope.cancel()

            async def send() -> None:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await _send(websocket, listener)  # ends on overflow or a closed socket
                group.cancel_scope.cancel()

            group.start_soon(until_disconnect)
            group.start_soon(send)
    finally:
        hub.forget(listener)

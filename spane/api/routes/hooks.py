"""``POST /v1/hooks/{path}``: webhook triggers (``triggers: [{webhook: {path, secret_env}}]``).

A delivery starts one execution of every workflow (latest version) with a webhook
trigger at ``path``; 202 lists them. Its input is the JSON body (empty: null), or the
trigger's ``input:`` rendered with ``event`` = ``{type: "webhook", path, delivery,
data: <body>}``.

Webhooks authenticate by signature, not by API key. A trigger with ``secret_env`` needs
``X-Spane-Signature: sha256=<hex HMAC-SHA256>`` computed with the secret in that
environment variable (read by the API process) over the raw body — or over
``<timestamp>.<body>`` when ``X-Spane-Timestamp`` (Unix seconds, within 5 minutes of
the server's clock) is sent. A missing or wrong signature is a 401 and starts nothing.
A trigger without ``secret_env`` accepts anyone's deliveries.

``X-Spane-Delivery`` (e.g. the sender's delivery id) makes a delivery idempotent: a
repeated one returns the executions it started the first time and starts nothing new.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Request, status
from pydantic import BaseModel, ConfigDict

from spane.api.bodies import decode_json
from spane.api.context import Context
from spane.api.problems import problem_responses
from spane.engine import Engine
from spane.errors import ExpressionError, InvalidInputError
from spane.expressions import compile_template
from spane.schemas.workflow import WebhookTrigger

router = APIRouter(prefix="/v1/hooks", tags=["hooks"])

SIGNATURE_HEADER = "X-Spane-Signature"
TIMESTAMP_HEADER = "X-Spane-Timestamp"
DELIVERY_HEADER = "X-Spane-Delivery"
TIMESTAMP_TOLERANCE = 300.0
"""Seconds a signed timestamp may differ from the server's clock."""
MAX_DELIVERY_ID = 200

_BODY: dict[str, Any] = {
    "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}}
}


class HookStarted(BaseModel):
    model_config = ConfigDict(frozen=True)

    workflow_id: str
    version: int
    trigger: int
    """Position of the webhook trigger in the workflow's ``triggers``."""
    execution_id: str


class HookAccepted(BaseModel):
    """A delivery's executions (those it started the first time, when repeated)."""

    model_config = ConfigDict(frozen=True)

    path: str
    delivery: str | None = None
    execution_ids: list[str]
    executions: list[HookStarted]


@dataclass(frozen=True, slots=True)
class HookTarget:
    workflow_id: str
    version: int
    index: int
    trigger: WebhookTrigger


def sign(secret: str | bytes, body: bytes, timestamp: str | int | None = None) -> str:
    """The ``X-Spane-Signature`` value for ``body`` (what a sender computes)."""
    key = secret.encode() if isinstance(secret, str) else secret
    text = body if timestamp is None else f"{timestamp}.".encode() + body
    return "sha256=" + hmac.new(key, text, hashlib.sha256).hexdigest()


def signature_problem(
    secret: str, body: bytes, signature: str | None, timestamp: str | None, now: float
) -> str | None:
    """Why the delivery's signature does not hold (None when it does)."""
    if not signature:
        return f"missing {SIGNATURE_HEADER} header"
    if timestamp is not None:
        try:
            sent = int(timestamp)
        except ValueError:
            return f"{TIMESTAMP_HEADER} must be Unix seconds"
        if abs(now - sent) > TIMESTAMP_TOLERANCE:
            return f"{TIMESTAMP_HEADER} is more than {int(TIMESTAMP_TOLERANCE)} s away"
    expected = sign(secret, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return f"{SIGNATURE_HEADER} does not match the body"
    return None


async def hook_targets(engine: Engine, path: str) -> list[HookTarget]:
    """The webhook triggers at ``path`` of every workflow's latest version."""
    return [
        HookTarget(record.workflow_id, record.version, index, trigger)
        for record in await engine.list_workflows()
        for index, trigger in enumerate(record.spec.triggers)
        if isinstance(trigger, WebhookTrigger) and trigger.webhook.path == path
    ]


def _authenticate(targets: list[HookTarget], request: Request, body: bytes, now: float) -> None:
    """Every trigger's signature holds, or nothing starts (401)."""
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    for target in targets:
        secret_env = target.trigger.webhook.secret_env
        if secret_env is None:
            continue
        secret = os.environ.get(secret_env)
        if not secret:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"the webhook's secret is not configured on this server (set {secret_env})",
            )
        reason = signature_problem(secret, body, signature, timestamp, now)
        if reason is not None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                reason,
                headers={"WWW-Authenticate": 'HMAC-SHA256 header="X-Spane-Signature"'},
            )


def _input(target: HookTarget, event: dict[str, Any]) -> Any:
    if target.trigger.input is None:
        return event["data"]
    try:
        return compile_template(target.trigger.input).render({"event": event})
    except ExpressionError as exc:
        loc = f"workflow {target.workflow_id!r} triggers[{target.index}].input"
        raise InvalidInputError(f"{loc}: {exc}") from None


def execution_id_of(delivery: str, target: HookTarget) -> str:
    """Deterministic per (delivery, workflow, trigger): a repeated delivery starts nothing."""
    digest = hashlib.sha256(f"hook|{delivery}|{target.workflow_id}|{target.index}".encode())
    return f"h-{digest.hexdigest()[:32]}"


@router.post(
    "/{path:path}",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=_BODY,
    responses=problem_responses(401, 404, 409, 413, 422, 503),
    summary="Deliver a webhook",
)
async def deliver(
    path: Annotated[str, Path(min_length=1, max_length=512)],
    request: Request,
    ctx: Context,
    delivery: Annotated[
        str | None, Header(alias=DELIVERY_HEADER, min_length=1, max_length=MAX_DELIVERY_ID)
    ] = None,
) -> HookAccepted:
    """Start the workflows whose webhook trigger is at ``path`` (see the module doc)."""
    engine = ctx.engine
    targets = await hook_targets(engine, path)
    if not targets:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no workflow has a webhook at {path!r}")
    body = await request.body()
    _authenticate(targets, request, body, engine.clock())
    event = {
        "type": "webhook",
        "path": path,
        "delivery": delivery,
        "data": decode_json(body) if body.strip() else None,
    }
    inputs = [_input(target, event) for target in targets]
    started: list[HookStarted] = []
    for target, value in zip(targets, inputs, strict=True):
        execution_id = await engine.start(
            target.workflow_id,
            value,
            version=target.version,
            idempotency_key=f"webhook:{target.index}:{delivery}" if delivery else None,
            execution_id=execution_id_of(delivery, target) if delivery else None,
        )
        started.append(HookStarted(**_fields(target), execution_id=execution_id))
    return HookAccepted(
        path=path,
        delivery=delivery,
        execution_ids=[item.execution_id for item in started],
        executions=started,
    )


def _fields(target: HookTarget) -> dict[str, Any]:
    return {"workflow_id": target.workflow_id, "version": target.version, "trigger": target.index}

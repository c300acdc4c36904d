"""Writing tasks: one of each kind, for the invoice workflow of examples/embedding.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pydantic import BaseModel, Field

import spane


class Invoice(BaseModel):
    customer: str
    email: str
    amount_cents: int = Field(gt=0)
    currency: str = "EUR"


# A plain `def` runs on a worker thread. Its first parameter receives the node's input;
# annotated with a pydantic model, the input arrives validated (an invalid input fails
# the node at once with InvalidTaskInput, naming the fields: no retry would fix it).
@spane.task("invoice.price")
def price(invoice: Invoice) -> dict[str, Any]:
    vat = round(invoice.amount_cents * 0.2)
    return {
        "customer": invoice.customer,
        "email": invoice.email,
        "total_cents": invoice.amount_cents + vat,
        "currency": invoice.currency,
    }


# An `async def` runs on the worker's event loop: never block it (await, or use `def`).
# A parameter named `ctx` (or typed spane.TaskContext) receives the attempt's context.
@spane.task("invoice.send")
async def send(mail: dict[str, Any], ctx: spane.TaskContext) -> dict[str, Any]:
    ctx.logger.info("sending invoice of %s", ctx.execution_id)  # logged with the ids
    if "@" not in mail["to"]:  # retrying cannot fix this: fail the node now
        raise spane.TaskError(f"bad address {mail['to']!r}", non_retryable=True)
    if ctx.attempt == 1 and mail.get("server_busy"):  # retry in 0.1 s, not the backoff
        raise spane.TaskError("mail server busy", retry_after=0.1)
    budget = None if ctx.deadline is None else ctx.deadline - time.time()
    async with asyncio.timeout(budget):  # end with the attempt (deadline: epoch seconds)
        await asyncio.sleep(0)  # e.g. an aiohttp call, passing ctx.idempotency_key along
    # Return JSON: dicts, lists, strings, numbers, booleans, None.
    return {"to": mail["to"], "message_id": ctx.idempotency_key, "attempt": ctx.attempt}


# A long task heartbeats: each heartbeat restarts the node's per-attempt `timeout`, so
# the timeout can be short while the task runs long. It also stops when cancelled.
@spane.task("invoice.archive")
def archive(job: dict[str, Any], ctx: spane.TaskContext) -> dict[str, Any]:
    pages = 0
    for _ in range(job["pages"]):
        if ctx.cancelled.is_set():  # the node was cancelled: stop early
            raise spane.TaskError("cancelled", non_retryable=True)
        time.sleep(0.05)  # one page of work
        pages += 1
        ctx.heartbeat({"pages": pages})  # in a `def` task, returns once sent
    return {"pages": pages, "node": ctx.node_id}


# A custom pool: nodes of `type: pdf` run this handler, with the node's `config:`.
# Workers serve it with `spane worker --pool pdf --import examples.writing_tasks`.
@spane.task_type("pdf")
def render_pdf(data: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    pages = 1 + len(data.get("lines", [])) // config.get("lines_per_page", 40)
    return {"file": f"{config['folder']}/{data['customer']}.pdf", "pages": pages}

"""Tasks of ``batch_for_each.yaml``: monthly invoicing, one loop iteration per customer."""

from __future__ import annotations

import asyncio
from typing import Any

import spane

PLAN_PRICES_CENTS = {"free": 0, "starter": 1500, "business": 7900}
SEAT_PRICE_CENTS = 500
VAT_RATES = {"DE": 0.19, "FR": 0.20, "NL": 0.21}


def quote(customer: dict[str, Any]) -> dict[str, Any]:
    """One customer's month: plan + extra seats (paid plans only) + VAT, in cents."""
    base = PLAN_PRICES_CENTS[customer["plan"]]
    extra_seats = max(0, int(customer.get("seats", 1)) - 1)
    net = base + (extra_seats * SEAT_PRICE_CENTS if base else 0)
    vat = round(net * VAT_RATES.get(customer.get("country", "DE"), 0.19))
    return {
        "customer": customer["id"],
        "net_cents": net,
        "vat_cents": vat,
        "total_cents": net + vat,
    }


@spane.task("billing.price")
async def price(customer: dict[str, Any]) -> dict[str, Any]:
    """Price one customer's month (an ``async def`` task runs on the worker's loop)."""
    await asyncio.sleep(0.05)  # pretend to read usage from a database
    return quote(customer)


@spane.task("billing.send")
def send(invoice: dict[str, Any], ctx: spane.TaskContext) -> dict[str, Any]:
    """Email the invoice; ``idempotency_key`` would let a mail API drop a duplicate."""
    return {"invoice_no": f"INV-{invoice['customer']}", "dedupe_key": ctx.idempotency_key}

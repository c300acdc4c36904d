"""Tasks of ``order_fulfilment.yaml``: a small web shop's order pipeline.

Every function registers itself in SPANE's default registry under ``shop.<name>``
(the name the workflow's ``function:`` fields use), so ``--import examples.shop`` is
all ``spane run`` needs. Nothing here talks to a real payment provider or carrier;
the functions compute plausible answers from their input.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from pydantic import BaseModel, Field, model_validator

import spane

DECLINED_CARD = "4000000000000002"
"""Test card number the fake gateway always declines (a permanent failure)."""
FLAKY_CARD = "4000000000000119"
"""Test card number whose first charge attempt hits a gateway glitch (a retried failure)."""


class Item(BaseModel):
    sku: str
    quantity: int = Field(ge=1)
    unit_price: float = Field(ge=0)


class Customer(BaseModel):
    name: str
    email: str


class Order(BaseModel):
    """The execution input; an invalid order fails ``validate`` with the fields named.

    Either ``items`` (priced here) or a ``total`` computed elsewhere; the customer is a
    ``{name, email}`` object or just an email address.
    """

    order_id: str
    customer: Customer | str
    items: list[Item] = Field(default_factory=list)
    total: float | None = Field(default=None, ge=0)
    card: str
    currency: str = "EUR"

    @model_validator(mode="after")
    def _priced(self) -> Order:
        if not self.items and self.total is None:
            raise ValueError("an order needs 'items' or a 'total'")
        return self

    @property
    def email(self) -> str:
        return self.customer if isinstance(self.customer, str) else self.customer.email


def _reference(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return f"{prefix}-{digest[:10].upper()}"


@spane.task("shop.validate")
def validate(order: Order) -> dict[str, Any]:
    """Check the order and price it. The input arrives validated into :class:`Order`."""
    if order.items:
        total = round(sum(item.quantity * item.unit_price for item in order.items), 2)
    else:
        total = float(order.total or 0)
    return {
        "order_id": order.order_id,
        "valid": total > 0,
        "total": total,
        "currency": order.currency,
        "email": order.email,
        "lines": len(order.items),
    }


@spane.task("shop.charge")
async def charge(payment: dict[str, Any], ctx: spane.TaskContext) -> dict[str, Any]:
    """Charge the card. A declined card is final; a gateway glitch is worth a retry."""
    if payment["card"] == DECLINED_CARD:
        raise spane.TaskError(
            "card declined by the issuer",
            non_retryable=True,
            type="CardDeclined",
            details={"order_id": payment["order_id"]},
        )
    if payment["card"] == FLAKY_CARD and ctx.attempt == 1:
        raise ConnectionError("payment gateway timed out")
    return {
        # Derived from the execution and the order, not the attempt: a retry books the
        # same charge id, so a real gateway would never charge twice.
        "charge_id": _reference("CH", ctx.execution_id, payment["order_id"]),
        "amount": payment["amount"],
        "currency": payment["currency"],
        "attempt": ctx.attempt,
    }


@spane.task("shop.review")
def review(order: dict[str, Any]) -> dict[str, Any]:
    """Big orders get a fraud review; this reviewer approves everything (after a moment)."""
    time.sleep(0.05)
    return {"approved": True, "reviewer": "auto", "total": order["total"]}


@spane.task("shop.ship")
def ship(request: dict[str, Any]) -> dict[str, Any]:
    """Book a parcel with the carrier; big orders travel insured."""
    order = request["order"]
    return {
        "tracking": _reference("TRK", order["order_id"]),
        "carrier": "DHL" if order["total"] >= 1000 else "Post",
        "insured": order["total"] >= 1000,
    }


@spane.task("shop.refund")
def refund(request: dict[str, Any]) -> dict[str, Any]:
    """Release whatever the failed charge held and record why (the ``catch`` branch)."""
    error = request["error"]
    return {
        "refund_id": _reference("RF", request["order_id"]),
        "order_id": request["order_id"],
        "reason": f"{error['type']}: {error['message']}",
    }


@spane.task("shop.notify")
def notify(message: dict[str, Any]) -> dict[str, Any]:
    """Email the customer about the outcome (the ``finally`` branch: runs either way)."""
    if message["shipped"]:
        text = f"Order {message['order_id']} is on its way."
    else:
        text = f"Order {message['order_id']} could not be completed; you were not charged."
    return {"to": message["email"], "text": text}

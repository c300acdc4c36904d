"""Tasks of ``expense_approval.yaml``."""

from __future__ import annotations

from typing import Any

import spane

MANAGERS = {"ada": "grace", "alan": "grace"}


@spane.task("approvals.submit")
async def submit(claim: dict[str, Any]) -> dict[str, Any]:
    return {**claim, "claim_id": f"EXP-{claim['employee']}-{int(claim['amount'] * 100)}"}


@spane.task("approvals.escalate")
async def escalate(timeout_error: dict[str, Any], ctx: spane.TaskContext) -> dict[str, Any]:
    """Receives the review's Timeout error (the `.error` port passes the error on)."""
    ctx.logger.info("escalating after: %s", timeout_error["message"])
    return {"manager": "grace", "reason": timeout_error["type"]}


@spane.task("approvals.record")
async def record(decision: dict[str, Any]) -> dict[str, Any]:
    status = "approved" if decision["approved"] else "rejected"
    return {"status": status, "by": decision["by"], "amount": decision["amount"]}

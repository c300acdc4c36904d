"""Tasks of ``customer_onboarding.yaml`` and its sub-workflows."""

from __future__ import annotations

import hashlib
from typing import Any

import spane

SANCTIONED = {"Mallory Evil"}


@spane.task("onboarding.verify_identity")
async def verify_identity(applicant: dict[str, Any]) -> dict[str, Any]:
    verified = "@" in applicant.get("email", "") and bool(applicant.get("name"))
    return {"verified": verified, "score": 0.93 if verified else 0.0}


@spane.task("onboarding.screen_sanctions")
async def screen_sanctions(applicant: dict[str, Any]) -> dict[str, Any]:
    return {"listed": applicant.get("name") in SANCTIONED}


@spane.task("onboarding.open_account")
async def open_account(applicant: dict[str, Any], ctx: spane.TaskContext) -> dict[str, Any]:
    # The idempotency key makes the account number stable if this attempt is re-run.
    digest = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:8].upper()
    return {"account": f"ACC-{applicant.get('country', 'XX')}-{digest}"}


@spane.task("onboarding.send_welcome")
async def send_welcome(account: dict[str, Any]) -> dict[str, Any]:
    return {"mail": f"welcome mail for {account['account']}"}

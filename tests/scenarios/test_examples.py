"""Every workflow in ``examples/`` runs as shipped and produces the documented output.

The example task modules register into SPANE's default registry (as users' modules do
with ``@spane.task``), so the engines here run ``default_registry``. The HTTP example
calls a small aiohttp server on 127.0.0.1 that mimics the public API it defaults to.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import examples.analytics as analytics
import examples.approvals
import examples.billing
import examples.onboarding
import examples.shop  # registers the shop.* tasks (`examples` is used below)
from spane import CommandRejectedError, Engine, ExecutionStatus
from spane.engine import ExecutionResult
from spane.workers.registry import default_registry
from tests.scenarios.conftest import EngineFactory
from tests.scenarios.helpers import eventually

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
INPUTS = EXAMPLES / "inputs"
WAIT = 20.0


def example_input(name: str) -> Any:
    return json.loads((INPUTS / name).read_text(encoding="utf-8"))


async def run_example(
    engine: Engine, file: str, data: Any, timeout: float = WAIT
) -> ExecutionResult:
    record = await engine.register(str(EXAMPLES / file))
    return await engine.run(record.workflow_id, data, timeout=timeout)


@pytest.fixture
async def engine(make_engine: EngineFactory) -> Engine:
    return await make_engine(default_registry)


def test_every_example_is_covered_here() -> None:
    covered = {
        "order_fulfilment.yaml",
        "fan_out_fan_in.yaml",
        "http_enrichment.yaml",
        "batch_for_each.yaml",
        "expense_approval.yaml",
        "customer_onboarding.yaml",
        "kyc_check.yaml",
        "welcome_pack.yaml",
    }
    assert {path.name for path in EXAMPLES.glob("*.yaml")} == covered


# ------------------------------------------------------------- order fulfilment
async def test_small_order_ships_by_post_without_review(engine: Engine) -> None:
    result = await run_example(engine, "order_fulfilment.yaml", example_input("order_small.json"))

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {
        "order_id": "A-1001",
        "status": "shipped",
        "total": 48.0,
        "tracking": result.output["tracking"],
        "reviewed": False,
        "charge_attempts": 1,
        "refund": None,
        "message": "Order A-1001 is on its way.",
    }
    assert result.output["tracking"].startswith("TRK-")
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["ship"].output["carrier"] == "Post"
    assert snapshot.nodes["review"].status == "skipped"
    assert snapshot.nodes["refund"].status == "skipped"


async def test_big_order_is_reviewed_and_ships_insured(engine: Engine) -> None:
    result = await run_example(engine, "order_fulfilment.yaml", example_input("order_big.json"))

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output["status"] == "shipped"
    assert result.output["total"] == 2148.0
    assert result.output["reviewed"] is True
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["review"].output == {
        "approved": True,
        "reviewer": "auto",
        "total": 2148.0,
    }
    assert snapshot.nodes["ship"].output["insured"] is True


async def test_declined_card_runs_the_refund_branch_and_still_notifies(engine: Engine) -> None:
    result = await run_example(
        engine, "order_fulfilment.yaml", example_input("order_declined.json")
    )

    # The failure is handled by `refund` (charge.error), so the execution succeeds.
    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {
        "order_id": "A-1003",
        "status": "refunded",
        "total": 19.5,
        "tracking": None,
        "reviewed": False,
        "charge_attempts": 1,  # CardDeclined is non-retryable
        "refund": "CardDeclined: card declined by the issuer",
        "message": "Order A-1003 could not be completed; you were not charged.",
    }
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["charge"].status == "failed"
    assert snapshot.nodes["ship"].status == "skipped"


async def test_gateway_glitch_is_retried(engine: Engine) -> None:
    result = await run_example(engine, "order_fulfilment.yaml", example_input("order_flaky.json"))

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output["status"] == "shipped"
    assert result.output["charge_attempts"] == 2


async def test_quick_order_with_a_total_and_an_email(engine: Engine) -> None:
    # The form scripts/demo uses: priced elsewhere, customer given as an email.
    order = {"order_id": "A-1", "customer": "ada@example.com", "total": 1250, "card": "4242"}

    result = await run_example(engine, "order_fulfilment.yaml", order)

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output["total"] == 1250.0
    assert result.output["reviewed"] is True
    snapshot = await engine.status(result.execution_id)
    assert snapshot.nodes["notify"].output["to"] == "ada@example.com"


async def test_order_without_items_or_total_fails_validation(engine: Engine) -> None:
    order = {"order_id": "A-2", "customer": "ada@example.com", "card": "4242"}

    result = await run_example(engine, "order_fulfilment.yaml", order)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "validate"
    assert "an order needs 'items' or a 'total'" in result.error.message


async def test_malformed_order_fails_validation_with_field_names(engine: Engine) -> None:
    order = example_input("order_small.json") | {"items": [{"sku": "X", "quantity": 0}]}

    result = await run_example(engine, "order_fulfilment.yaml", order)

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.node_id == "validate"
    assert result.error.type == "InvalidTaskInput"
    assert "items.0.quantity" in result.error.message
    assert "items.0.unit_price" in result.error.message


# --------------------------------------------------------------- fan-out/fan-in
async def test_sales_report_aggregates_every_region(engine: Engine) -> None:
    request = {"day": "2024-03-01", "orders_per_region": 120, "seed": 11}

    result = await run_example(engine, "fan_out_fan_in.yaml", request)

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    # The same numbers computed directly from the task functions.
    shards = analytics.shard(request)["shards"]
    regions = [
        analytics.summarise({"region": region, "orders": shards[region]})
        for region in analytics.REGIONS
    ]
    total = sum(region["revenue_cents"] for region in regions)
    best = max(regions, key=lambda region: region["revenue_cents"])["region"]
    above = [r["region"] for r in regions if r["revenue_cents"] * len(regions) > total]
    assert result.output == {
        "day": "2024-03-01",
        "regions": 5,
        "orders": 600,
        "revenue": total / 100,
        "best_region": best,
        "above_average": above,
        "every_region_sold": True,
        "top_products": sorted(
            {region["top_product"] for region in regions},
            key=[region["top_product"] for region in regions].index,
        ),
    }


async def test_region_workers_run_in_parallel(engine: Engine) -> None:
    result = await run_example(engine, "fan_out_fan_in.yaml", {"orders_per_region": 10, "seed": 1})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    snapshot = await engine.status(result.execution_id)
    spans = [
        (snapshot.nodes[region].started_at, snapshot.nodes[region].finished_at)
        for region in analytics.REGIONS
    ]
    latest_start = max(start for start, _ in spans if start is not None)
    earliest_end = min(end for _, end in spans if end is not None)
    assert latest_start < earliest_end  # all five were running at the same moment


# ------------------------------------------------------------------ http enrichment
USER = {
    "id": 1,
    "name": "Leanne Graham",
    "email": "Sincere@April.biz",
    "address": {"city": "Gwenborough"},
    "company": {"name": "Romaguera-Crona"},
}


@pytest.fixture
async def api() -> AsyncIterator[str]:
    """A tiny JSON API on 127.0.0.1 shaped like jsonplaceholder.typicode.com."""

    async def user(request: web.Request) -> web.Response:
        if request.match_info["user_id"] != "1":
            return web.json_response({}, status=404)
        return web.json_response(USER)

    async def posts(request: web.Request) -> web.Response:
        user_id = int(request.query["userId"])
        return web.json_response(
            [
                {"id": 1, "userId": user_id, "title": "hello", "body": "short"},
                {"id": 2, "userId": user_id, "title": "world", "body": "long " * 40},
            ]
        )

    app = web.Application()
    app.add_routes([web.get("/users/{user_id}", user), web.get("/posts", posts)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_http_enrichment_builds_a_profile(engine: Engine, api: str) -> None:
    result = await run_example(engine, "http_enrichment.yaml", {"user_id": 1, "base_url": api})

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    assert result.output == {
        "id": 1,
        "name": "Leanne Graham",
        "email": "sincere@april.biz",
        "city": "Gwenborough",
        "company": "Romaguera-Crona",
        "posts": 2,
        "titles": ["hello", "world"],
        "long_posts": [2],
    }


async def test_http_enrichment_unknown_user_fails_with_a_clear_error(
    engine: Engine, api: str
) -> None:
    result = await run_example(engine, "http_enrichment.yaml", {"user_id": 2, "base_url": api})

    assert result.status == ExecutionStatus.FAILED
    assert result.error is not None
    assert result.error.type == "UnknownUser"
    assert result.error.node_id == "unknown_user"
    assert "no user 2" in result.error.message
    assert "HTTP 404" in result.error.message


async def test_http_enrichment_refuses_input_outside_its_schema(engine: Engine) -> None:
    from spane.errors import InvalidInputError

    await engine.register(str(EXAMPLES / "http_enrichment.yaml"))

    with pytest.raises(InvalidInputError, match="user_id"):
        await engine.start("user-enrichment", {"user_id": "one"})


# ----------------------------------------------------------------- batch for_each
async def test_monthly_invoicing_prices_every_customer(engine: Engine) -> None:
    customers = example_input("customers.json")

    result = await run_example(engine, "batch_for_each.yaml", customers, timeout=5.0)

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    expected = [examples.billing.quote(c)["total_cents"] for c in customers["customers"]]
    paying = [c["id"] for c, cents in zip(customers["customers"], expected, strict=True) if cents]
    invoices = [f"INV-{customer}" for customer in paying]
    assert result.output == {
        "month": "2024-03",
        "customers": 7,
        "invoiced": invoices,
        "free": ["initech", "stark"],
        "revenue_cents": sum(expected),
        "mail_batches": [invoices[i : i + 2] for i in range(0, len(invoices), 2)],
    }


# -------------------------------------------------------------- expense approval
CLAIM = {"employee": "ada", "amount": 1800, "purpose": "conference"}


async def _waiting_for(engine: Engine, execution_id: str, signal: str) -> None:
    async def waiting() -> bool:
        snapshot = await engine.status(execution_id)
        return signal in snapshot.meta.signals

    await eventually(waiting, timeout=WAIT, what=f"a node waiting for {signal!r}")


async def test_small_expense_is_approved_by_policy(engine: Engine) -> None:
    result = await run_example(engine, "expense_approval.yaml", {"employee": "ada", "amount": 80})
    assert result.output == {"status": "approved", "by": "policy", "amount": 80}


async def test_expense_approved_by_a_person(engine: Engine) -> None:
    record = await engine.register(str(EXAMPLES / "expense_approval.yaml"))
    execution_id = await engine.start(record.workflow_id, CLAIM)
    await _waiting_for(engine, execution_id, "approval")
    with pytest.raises(CommandRejectedError, match="approved"):
        await engine.signal(execution_id, "approval", {"by": "bob"})  # schema: refused
    await engine.signal(execution_id, "approval", {"approved": True, "by": "bob"})
    result = await engine.wait(execution_id, WAIT)
    assert result.output == {"status": "approved", "by": "bob", "amount": 1800}


async def test_unanswered_expense_escalates_to_the_manager(engine: Engine) -> None:
    record = await engine.register(str(EXAMPLES / "expense_approval.yaml"))
    execution_id = await engine.start(record.workflow_id, CLAIM)
    await _waiting_for(engine, execution_id, "manager-approval")
    await engine.signal(execution_id, "manager-approval", {"approved": True})
    result = await engine.wait(execution_id, WAIT)
    assert result.output == {"status": "approved", "by": "grace", "amount": 1800}
    nodes = (await engine.status(execution_id)).nodes
    assert nodes["review"].error is not None
    assert nodes["review"].error.type == "Timeout"


async def test_expense_nobody_answers_is_rejected(engine: Engine) -> None:
    result = await run_example(engine, "expense_approval.yaml", CLAIM)
    assert result.output == {"status": "rejected", "by": "timeout", "amount": 1800}


# ----------------------------------------------------------- customer onboarding
APPLICANT = {"name": "Ada Lovelace", "email": "ada@example.com", "country": "GB"}


async def _register_onboarding(engine: Engine) -> None:
    for name in ("kyc_check.yaml", "welcome_pack.yaml"):
        await engine.register(str(EXAMPLES / name))


async def test_onboarding_composes_two_sub_workflows(engine: Engine) -> None:
    await _register_onboarding(engine)
    result = await run_example(engine, "customer_onboarding.yaml", APPLICANT)
    assert result.status == ExecutionStatus.SUCCEEDED
    assert result.output["status"] == "active"
    assert result.output["account"].startswith("ACC-GB-")
    assert result.output["kyc_score"] == 0.93
    nodes = (await engine.status(result.execution_id)).nodes
    for node_id in ("kyc", "welcome"):
        [child_id] = nodes[node_id].children
        child = await engine.status(child_id)
        assert child.meta.parent is not None
        assert child.meta.parent.execution_id == result.execution_id


async def test_onboarding_declines_a_sanctioned_applicant(engine: Engine) -> None:
    await _register_onboarding(engine)
    applicant = {**APPLICANT, "name": "Mallory Evil"}
    result = await run_example(engine, "customer_onboarding.yaml", applicant)
    assert result.output == {"status": "declined", "reason": "KYC checks failed"}


# ------------------------------------------------- the README's opening workflow
def _readme_opening_workflow() -> dict[str, Any]:
    import re

    import yaml

    readme = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    document = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)[0])
    assert isinstance(document, dict)
    return {**document, "id": "readme-opening"}  # beside order-fulfilment, not over it


@pytest.mark.parametrize(
    ("order", "shipped", "reviewed", "refunded"),
    [
        ("order_small.json", True, False, False),
        ("order_big.json", True, True, False),
        ("order_declined.json", False, False, True),
    ],
)
async def test_the_readme_opening_workflow_runs_on_examples_shop(
    engine: Engine, order: str, shipped: bool, reviewed: bool, refunded: bool
) -> None:
    record = await engine.register(_readme_opening_workflow())
    result = await engine.run(record.workflow_id, example_input(order), timeout=WAIT)

    assert result.status == ExecutionStatus.SUCCEEDED, result.error
    nodes = (await engine.status(result.execution_id)).nodes
    assert (nodes["ship"].status == "succeeded") is shipped
    assert (nodes["review"].status == "succeeded") is reviewed
    assert (nodes["refund"].status == "succeeded") is refunded
    notice = nodes["notify"].output
    assert notice["to"] == example_input(order)["customer"]["email"]
    assert ("on its way" in notice["text"]) is shipped

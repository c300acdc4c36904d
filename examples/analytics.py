"""Tasks of ``fan_out_fan_in.yaml``: daily sales analytics, one worker per region.

``analytics.shard`` makes a deterministic day of orders (seeded, so runs and tests
agree) and splits it into one shard per region; ``analytics.summarise`` is the
per-region worker the workflow runs five times in parallel.
"""

from __future__ import annotations

import random
import time
from typing import Any

import spane

REGIONS = ("eu", "us", "apac", "latam", "africa")
PRODUCTS = ("basic", "pro", "team", "enterprise")
PRICES_CENTS = {"basic": 900, "pro": 2900, "team": 9900, "enterprise": 49900}
MIX = {  # how often each product sells, per region
    "eu": (50, 30, 15, 5),
    "us": (30, 45, 20, 5),
    "apac": (45, 35, 15, 5),
    "latam": (55, 25, 15, 5),
    "africa": (40, 25, 30, 5),
}


@spane.task("analytics.shard")
def shard(request: dict[str, Any]) -> dict[str, Any]:
    """Generate ``orders_per_region`` orders per region and group them by region."""
    rng = random.Random(request.get("seed", 7))
    per_region = int(request.get("orders_per_region", 100))
    shards: dict[str, list[dict[str, Any]]] = {}
    for region in REGIONS:
        orders = []
        for number in range(per_region):
            product = rng.choices(PRODUCTS, weights=MIX[region])[0]
            orders.append(
                {
                    "id": f"{region}-{number:05d}",
                    "product": product,
                    "quantity": rng.randint(1, 3),
                }
            )
        shards[region] = orders
    return {"day": request.get("day", "2024-01-01"), "shards": shards}


@spane.task("analytics.summarise")
def summarise(work: dict[str, Any]) -> dict[str, Any]:
    """Revenue (in cents), order count and best-selling product of one region's shard."""
    time.sleep(float(work.get("simulated_seconds", 0.0)))  # pretend this is heavy
    units: dict[str, int] = dict.fromkeys(PRODUCTS, 0)
    revenue = 0
    for order in work["orders"]:
        units[order["product"]] += order["quantity"]
        revenue += PRICES_CENTS[order["product"]] * order["quantity"]
    return {
        "region": work["region"],
        "orders": len(work["orders"]),
        "revenue_cents": revenue,
        "top_product": max(PRODUCTS, key=lambda product: units[product]),
    }

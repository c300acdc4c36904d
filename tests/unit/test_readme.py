"""The README's examples are real: its workflow snippets validate and its expressions
compute what the text says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from spane.compiler.compile import compile_plan
from spane.expressions import compile_template
from spane.schemas.loader import spec_from_data

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README, flags=re.S)


def test_the_opening_workflow_compiles() -> None:
    plan = compile_plan(spec_from_data(yaml.safe_load(_yaml_blocks()[0])))
    assert plan.roots == ("validate",)
    assert set(plan.leaves) >= {"refund", "notify"}


def test_the_transform_example_computes_what_it_says() -> None:
    nodes = yaml.safe_load(_yaml_blocks()[1])
    report = next(n for n in nodes if n["id"] == "report")
    context = {
        "data": [{"region": "eu", "sales": [1, 2]}, {"region": "us", "sales": [5]}],
        "input": {
            "customers": [{"tier": "gold", "n": 1}, {"tier": "free", "n": 2}],
            "ids": [1, 2, 3],
            "customer": {"name": "Ada", "email": "ada@example.com", "phone": "1"},
            "overrides": {"b": 2},
        },
        "vars": {"defaults": {"a": 1, "b": 1}},
    }
    assert compile_template(report["output"]).render(context) == {
        "total": 8,
        "best": "us",
        "by_tier": {"free": [{"n": 2, "tier": "free"}], "gold": [{"n": 1, "tier": "gold"}]},
        "batches": [[1, 2, 3]],
        "contact": {"name": "Ada", "email": "ada@example.com"},
        "settings": {"a": 1, "b": 2},
    }

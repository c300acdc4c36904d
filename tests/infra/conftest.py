"""Fixtures of the infra tests: the chart renderer (helm-python-sdk, no helm binary),
the Kubernetes schema validator (kubernetes-validate) and the CRD validator (node with
@kubernetes-models packages, installed into tests/infra/node by ``npm ci`` on first use).

A missing tool skips the tests that need it, with the reason, unless CI=true: then it is
a failure (see support.tool_missing)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.infra.support import NODE_DIR, tool_missing

NodeValidator = Callable[[list[dict[str, Any]]], subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def helm() -> ModuleType:
    try:
        import helm_python
    except ImportError as exc:  # pragma: no cover - depends on the install
        tool_missing(f"helm-python-sdk is not installed ({exc}); pip install helm-python-sdk")
    return helm_python


@pytest.fixture(scope="session")
def kubernetes_validate() -> ModuleType:
    try:
        import kubernetes_validate  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the install
        tool_missing(
            f"kubernetes-validate is not installed ({exc}); pip install kubernetes-validate"
        )
    module: ModuleType = kubernetes_validate
    return module


@pytest.fixture(scope="session")
def node_validator() -> NodeValidator:
    """Runs ``node validate.mjs`` on a list of custom resources (as JSON)."""
    node = shutil.which("node")
    if node is None:
        tool_missing("node is not installed (needed to validate KEDA/ServiceMonitor resources)")
    if not (NODE_DIR / "node_modules" / "@kubernetes-models" / "keda").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            tool_missing("npm is not installed (needed once: npm ci in tests/infra/node)")
        result = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            tool_missing(f"npm ci in {NODE_DIR} failed: {result.stderr.strip()[-2000:]}")

    def validate(resources: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [node, "validate.mjs"],
            cwd=NODE_DIR,
            input=json.dumps(resources),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return validate

"""Modules that decide do no I/O and read no clock (DESIGN §1).

The import contracts themselves are checked by import-linter (``lint-imports`` in
``scripts/check``, configured in ``pyproject.toml``); this test also catches an
``async def`` in a pure module, which no import shows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PURE = ["spane/schemas", "spane/expressions", "spane/compiler", "spane/core"]
FORBIDDEN = {
    "asyncio",
    "aio_pika",
    "aiormq",
    "redis",
    "pymongo",
    "aiohttp",
    "opentelemetry",
    "uuid",
    "time",
    "random",
    "socket",
    "threading",
    "subprocess",
    "spane.bus",
    "spane.state",
    "spane.workers",
    "spane.engine",
}
ROOT = Path(__file__).resolve().parents[2]


def _files() -> list[Path]:
    files: list[Path] = []
    for entry in PURE:
        path = ROOT / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.AsyncFunctionDef):
            names.add(f"async def {node.name}")
    return names


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_module_does_no_io(path: Path) -> None:
    bad = {
        name
        for name in _imports(path)
        if name.startswith("async def ")
        or any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not bad, f"{path.name} must stay pure but uses {sorted(bad)}"

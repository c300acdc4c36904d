"""The committed dashboard build (spane/api/static/) matches the ui/ sources.

``ui/build.sh`` stamps the build with a sha256 over the sources (ui/scripts/stamp.mjs);
this recomputes it the same way. A mismatch means someone changed ui/ without
rebuilding: run ``ui/build.sh`` and commit spane/api/static/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "ui"
STATIC = ROOT / "spane" / "api" / "static"
ROOT_FILES = ("index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts")


def source_files() -> list[str]:
    files = [UI / name for name in ROOT_FILES]
    files += [
        path
        for path in (UI / "src").rglob("*")
        if path.is_file() and not path.name.endswith((".test.ts", ".test.tsx"))
    ]
    return sorted(path.relative_to(UI).as_posix() for path in files)


def source_hash() -> str:
    digest = hashlib.sha256()
    for name in source_files():
        digest.update(name.encode() + b"\0")
        digest.update((UI / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def test_the_committed_build_is_not_stale() -> None:
    stamp_file = STATIC / "build-stamp.json"
    assert stamp_file.is_file(), "no dashboard build: run ui/build.sh"
    stamp = json.loads(stamp_file.read_text())
    assert stamp["sha256"] == source_hash(), (
        "spane/api/static is stale: ui/ changed since it was built; run ui/build.sh "
        "and commit spane/api/static/"
    )
    assert stamp["files"] == len(source_files())


def test_the_build_has_an_index_and_its_assets() -> None:
    index = (STATIC / "index.html").read_text()
    assert '<div id="root">' in index
    for ref in ("./assets/index-", ".js", ".css"):
        assert ref in index
    bundles = list((STATIC / "assets").glob("*.js"))
    assert bundles, "no JavaScript bundle"
    assert sum(b.stat().st_size for b in bundles) < 900_000, "the bundle grew: keep it reasonable"


def test_the_wheel_ships_the_dashboard() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '"api/static/**/*"' in text or "api/static/**" in text


@pytest.mark.skipif(
    not (UI / "node_modules" / ".bin" / "vitest").exists() or shutil.which("npx") is None,
    reason="ui/node_modules not installed (cd ui && npm ci): the Vitest suite is optional here",
)
def test_vitest_suite() -> None:  # pragma: no cover - needs node
    env = {**os.environ, "CI": "true", "NO_COLOR": "1"}
    result = subprocess.run(
        ["npx", "vitest", "run"], cwd=UI, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr

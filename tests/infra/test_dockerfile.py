"""infra/Dockerfile, .dockerignore and examples/custom-image, checked statically (no
Docker engine here): pinned bases, what the builder builds and the runtime installs, a
non-root user, the entrypoint, that the build context holds what the build copies and
nothing else, and that the derived image's command runs its tasks."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from typing import Any

import pytest
import yaml

from tests.infra.support import (
    CHART,
    INFRA,
    ROOT,
    Dockerfile,
    Stage,
    dockerignore_excludes,
    parse_dockerfile,
    parse_spane_args,
    read_dockerignore,
)

DOCKERFILE = INFRA / "Dockerfile"
CUSTOM = ROOT / "examples" / "custom-image"
PINNED_PYTHON = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|gcc|g\+\+|build-essential|make|cc|git)\b")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE)


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def stage(dockerfile: Dockerfile, name: str) -> Stage:
    (found,) = [s for s in dockerfile.stages if s.name == name]
    return found


def runs(stage: Stage) -> str:
    return "\n".join(i.value for i in stage.all("RUN"))


def test_every_base_is_an_exactly_pinned_slim_python(dockerfile: Dockerfile) -> None:
    names = {s.name for s in dockerfile.stages}
    bases = [s.base for s in dockerfile.stages if s.base not in names]
    assert bases, "no external base image"
    for base in bases:
        assert PINNED_PYTHON.match(base), f"not pinned to an exact python 3.11 slim tag: {base}"
    assert len(dockerfile.stages) >= 2, "multi-stage: build tools stay out of the runtime"


def test_builder_builds_wheels_with_the_extras(
    dockerfile: Dockerfile, pyproject: dict[str, Any]
) -> None:
    builder = stage(dockerfile, "builder")
    script = runs(builder)
    assert "pip wheel" in script
    extras = re.search(r"\.\[([\w,]+)\]", script)
    assert extras, script
    wanted = set(extras.group(1).split(","))
    assert wanted == {"distributed", "api"}
    assert wanted <= set(pyproject["project"]["optional-dependencies"])


def test_build_context_holds_what_the_builder_copies(
    dockerfile: Dockerfile, pyproject: dict[str, Any]
) -> None:
    ignore = read_dockerignore(ROOT / ".dockerignore")
    copied: list[str] = []
    for instruction in stage(dockerfile, "builder").all("COPY"):
        words = [w for w in instruction.words() if not w.startswith("--")]
        copied.extend(words[:-1])
    assert pyproject["project"]["readme"] in copied, "setuptools reads the readme"
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not dockerignore_excludes(ignore, source), f".dockerignore drops {source}"
    for module in (ROOT / "spane").rglob("*.py"):
        relative = module.relative_to(ROOT).as_posix()
        assert not dockerignore_excludes(ignore, relative), relative


def test_dockerignore_keeps_local_state_out() -> None:
    ignore = read_dockerignore(ROOT / ".dockerignore")
    for path in (
        ".venv/bin/python",
        ".git/config",
        "tests/infra/node/node_modules/x.js",
        "spane/__pycache__/config.cpython-311.pyc",
        ".env",
        "bench/results/run.json",
    ):
        assert dockerignore_excludes(ignore, path), path


def test_runtime_installs_only_the_built_wheels(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.final
    script = runs(runtime)
    assert "--mount=type=bind,from=builder" in script, "wheels come from the builder"
    assert "--no-index" in script, "nothing is fetched (or compiled) in the runtime stage"
    assert '"spane[distributed,api]"' in script
    assert not BUILD_TOOLS.search(script), f"build tools in the runtime stage: {script}"
    for instruction in runtime.all("COPY"):
        assert not re.match(r"^\.\s", instruction.value), "the runtime copies no source tree"


def test_runtime_runs_as_an_unprivileged_user(dockerfile: Dockerfile) -> None:
    runtime = dockerfile.final
    users = runtime.all("USER")
    assert users, "no USER: the image would run as root"
    uid, _, gid = users[-1].value.partition(":")
    assert uid.isdigit(), "a numeric uid, so runAsNonRoot can check it"
    assert int(uid) >= 10000
    assert not gid or (gid.isdigit() and int(gid) != 0)
    assert f"--uid {uid}" in runs(runtime), "the uid exists in /etc/passwd"
    # USER comes after every RUN: nothing after it runs as root again.
    keywords = [i.keyword for i in runtime.instructions]
    last_run = max(i for i, k in enumerate(keywords) if k == "RUN")
    assert keywords.index("USER") > last_run


def test_entrypoint_is_the_spane_command(dockerfile: Dockerfile, pyproject: dict[str, Any]) -> None:
    (entrypoint,) = dockerfile.final.all("ENTRYPOINT")
    assert entrypoint.exec_form() == ["spane"], "exec form: spane is PID 1 and gets SIGTERM"
    assert "spane" in pyproject["project"]["scripts"]
    (cmd,) = dockerfile.final.all("CMD")
    assert cmd.exec_form() is not None


def test_exposed_ports_are_the_ones_the_deployments_probe(dockerfile: Dockerfile) -> None:
    (expose,) = dockerfile.final.all("EXPOSE")
    ports = {int(p.split("/")[0]) for p in expose.words()}
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    assert ports == {values["api"]["port"], values["metrics"]["port"]}
    env = " ".join(i.value for i in dockerfile.final.all("ENV"))
    assert f"SPANE_METRICS_PORT={values['metrics']['port']}" in env


# ------------------------------------------------------------------- the derived image
def test_custom_image_derives_from_spane_and_runs_a_function_pool() -> None:
    custom = parse_dockerfile(CUSTOM / "Dockerfile")
    (only,) = custom.stages
    assert only.base == custom.global_args["SPANE_IMAGE"] != ""
    for instruction in only.all("COPY"):
        words = [w for w in instruction.words() if not w.startswith("--")]
        for source in words[:-1]:
            assert (CUSTOM / source).is_file(), source
    users = only.all("USER")
    assert users
    assert not users[-1].value.startswith(("0", "root"))
    (cmd,) = only.all("CMD")
    args = cmd.exec_form()
    assert args is not None
    command, params = parse_spane_args(args)
    assert (command, params["pool"], list(params["imports"])) == (
        "worker",
        ["function"],
        ["mytasks"],
    )


def test_custom_image_tasks_run_under_the_import_name_of_its_command() -> None:
    # What the image's worker imports (`--import mytasks` from its working directory),
    # run with the example workflow in one process.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spane",
            "run",
            "greetings.yaml",
            "--import",
            "mytasks",
            "--input",
            '{"name": "Ada"}',
        ],
        cwd=CUSTOM,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"HELLO, ADA!"' in result.stdout

"""Helpers of the infra tests: tools that may be missing, the real `spane` CLI as a
parser of the command lines the deployment files give, a minimal .dockerignore
matcher, and the Dockerfile reader."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import typer

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CHART = INFRA / "helm" / "spane"
NODE_DIR = Path(__file__).resolve().parent / "node"

IN_CI = os.environ.get("CI", "").lower() == "true"


def tool_missing(reason: str) -> NoReturn:
    """A tool the test needs is not installed: skip with the reason here, fail under
    CI=true (where .ci/run is expected to have installed it)."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: infra test tools must be installed)")
    pytest.skip(reason)


# ----------------------------------------------------------------- the spane CLI
def _spane_commands() -> dict[str, Any]:
    from spane.cli.main import app

    group = typer.main.get_command(app)
    commands: dict[str, Any] = getattr(group, "commands")  # noqa: B009 - typed loosely
    return commands


def parse_spane_args(args: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``spane <args>`` with the real command (nothing runs): the subcommand and
    its parameters. Raises the CLI's usage error for bad options, LookupError for an
    unknown command."""
    name, *rest = args
    command = _spane_commands().get(name)
    if command is None:
        raise LookupError(f"spane has no command {name!r}")
    context = command.make_context(name, list(rest))
    return name, dict(context.params)


def spane_has_command(name: str) -> bool:
    return name in _spane_commands()


# ----------------------------------------------------------------- .dockerignore
def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def dockerignore_excludes(patterns: Sequence[str], path: str) -> bool:
    """Whether .dockerignore rules exclude ``path`` (relative, '/'-separated), as
    Docker decides: the last matching pattern wins, ``!`` re-includes, and a pattern
    matching a parent directory matches everything below it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        regex = _dockerignore_regex(raw.removeprefix("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def read_dockerignore(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


# ----------------------------------------------------------------- Dockerfile
@dataclass
class Instruction:
    keyword: str
    value: str

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's arguments, or None for the shell form."""
        import json

        if not self.value.startswith("["):
            return None
        parsed = json.loads(self.value)
        assert isinstance(parsed, list)
        return [str(item) for item in parsed]

    def words(self) -> list[str]:
        return shlex.split(self.value, posix=True)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


_ARG_REF = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions of a Dockerfile by stage (line continuations joined, comments
    dropped, global ARG defaults substituted into FROM)."""
    logical: list[str] = []
    buffer = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    assert not buffer, "Dockerfile ends inside a continued line"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, value = line.partition(" ")
        keyword = keyword.upper()
        value = value.strip()
        if keyword == "FROM":
            words = value.split()
            words = [w for w in words if not w.startswith("--platform")]
            base = _ARG_REF.sub(lambda m: global_args.get(m.group(1) or m.group(2), ""), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=base, name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede the first FROM, not {keyword}"
            arg_name, _, default = value.partition("=")
            global_args[arg_name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, value))
    return Dockerfile(global_args=global_args, stages=stages)

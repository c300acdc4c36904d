"""What every ``spane`` command shares: exit codes, error reporting, ``--input`` and
``--import`` handling, and loading definitions with their problems made readable.

This module stays cheap to import (``spane --help`` loads it): the schema loader and the
compiler are imported by the functions that need them.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from spane.errors import (
    ConfigurationError,
    InvalidInputError,
    InvalidWorkflowError,
    NotFoundError,
    Problem,
    SpaneError,
    TaskNotFoundError,
)

if TYPE_CHECKING:
    from spane.compiler.plan import Plan
    from spane.schemas.workflow import WorkflowSpec

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FileError",
    "UsageError",
    "exit_with",
    "import_modules",
    "load_for_run",
    "one_line",
    "parse_input",
    "plan_or_exit",
    "problem_lines",
    "problem_text",
    "read_spec",
    "spane_errors",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad usage detected by the CLI; its lines are printed and the exit code is 2."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class FileError(Exception):
    """A definition file that cannot be read at all."""


def exit_with(code: int, *lines: str) -> NoReturn:
    """Print ``lines`` on stderr and leave the command with ``code``."""
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def one_line(text: str) -> str:
    return " ".join(text.split())


@contextlib.contextmanager
def spane_errors() -> Iterator[None]:
    """Turn errors into messages and exit codes: usage errors and lookups exit 2."""
    try:
        yield
    except UsageError as exc:
        exit_with(EXIT_USAGE, *(f"error: {line}" for line in exc.lines))
    except TaskNotFoundError as exc:
        exit_with(EXIT_USAGE, f"error: {one_line(str(exc))} (spane run --import MODULE)")
    except (NotFoundError, InvalidInputError, ConfigurationError) as exc:
        exit_with(EXIT_USAGE, f"error: {one_line(str(exc))}")
    except InvalidWorkflowError as exc:
        name = exc.workflow_id or "workflow"
        exit_with(EXIT_USAGE, *(f"error: {name}: {problem_text(p)}" for p in exc.problems))
    except SpaneError as exc:
        exit_with(EXIT_FAILED, f"error: {one_line(str(exc))}")


# ----------------------------------------------------------------- definitions
def read_spec(path: Path) -> WorkflowSpec:
    """Raises :class:`InvalidWorkflowError` or :class:`FileError`."""
    from spane.schemas.loader import load_workflow_file

    try:
        return load_workflow_file(str(path))
    except FileNotFoundError:
        raise FileError("no such file") from None
    except IsADirectoryError:
        raise FileError("is a directory, not a workflow file") from None
    except UnicodeDecodeError:
        raise FileError("is not UTF-8 text") from None
    except OSError as exc:
        raise FileError(f"cannot read: {exc.strerror or exc}") from None


def problem_text(problem: Problem, source: str | None = None) -> str:
    """``location: message (hint)`` on one line; a parse error's ``file:L:C`` made readable."""
    location = problem.location
    if source is not None and location.startswith(f"{source}:"):
        line, _, column = location[len(source) + 1 :].partition(":")
        location = f"line {line}, column {column}" if column else f"line {line}"
    elif source is not None and location == source:
        location = "(document)"
    message = problem.message.split('\n  in "', 1)[0]  # drop PyYAML's echo of the text
    text = f"{location}: {one_line(message)}"
    return f"{text} ({problem.hint})" if problem.hint else text


def problem_lines(path: Path, error: InvalidWorkflowError) -> list[str]:
    return [f"{path}: {problem_text(problem, str(path))}" for problem in error.problems]


def plan_or_exit(path: Path) -> Plan:
    """The compiled plan; problems go to stderr (exit 1), an unreadable file exits 2."""
    from spane.compiler.compile import compile_plan

    try:
        return compile_plan(read_spec(path))
    except FileError as exc:
        exit_with(EXIT_USAGE, f"{path}: {exc}")
    except InvalidWorkflowError as exc:
        exit_with(EXIT_FAILED, *problem_lines(path, exc))


def load_for_run(files: Sequence[Path]) -> list[WorkflowSpec]:
    """Every file loaded and compiled; all problems of all files at once (exit 2)."""
    from spane.compiler.compile import compile_plan

    specs: list[WorkflowSpec] = []
    lines: list[str] = []
    for path in files:
        try:
            spec = read_spec(path)
            compile_plan(spec)
        except FileError as exc:
            lines.append(f"{path}: {exc}")
        except InvalidWorkflowError as exc:
            lines.extend(problem_lines(path, exc))
        else:
            specs.append(spec)
    if lines:
        exit_with(EXIT_USAGE, *lines)
    return specs


# --------------------------------------------------------- --input, --import
def parse_input(text: str | None) -> Any:
    """``--input``: JSON text, ``@file.json``, or ``@-`` for standard input."""
    if text is None:
        return None
    source = "the value"
    if text.startswith("@"):
        name = text[1:]
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise UsageError(f"--input: cannot read {name!r}: {reason}") from None
        source = "standard input" if name == "-" else repr(name)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--input: {source} is not valid JSON: {exc.msg} "
            f"(line {exc.lineno}, column {exc.colno})"
        ) from None


def _module_name(name: str) -> str:
    """A module name, or the module a ``.py`` path stands for (its folder on sys.path)."""
    if not name.endswith(".py"):
        return name
    path = Path(name).resolve()
    if not path.is_file():
        raise UsageError(f"--import: {name!r}: no such file")
    try:
        relative = path.relative_to(Path.cwd())
    except ValueError:
        sys.path.insert(0, str(path.parent))
        return path.stem
    return ".".join(relative.with_suffix("").parts)


def import_modules(names: Sequence[str]) -> None:
    """Import task modules (their ``@spane.task`` functions register themselves), with the
    current directory on ``sys.path`` so that ``--import examples.shop`` works."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    for name in names:
        module = _module_name(name)
        try:
            importlib.import_module(module)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            raise UsageError(f"--import: cannot import {name!r}: {reason}") from None

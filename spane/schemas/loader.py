"""Reading definitions from YAML / JSON text into :class:`WorkflowSpec`.

Structural errors from pydantic become :class:`~spane.errors.Problem` entries with
locations like ``nodes[2].request.url`` (an unknown field with a "did you mean" among
its model's fields); a definition that fails its model also gets the graph checks of
:mod:`spane.schemas.draft_checks`, so every problem is reported at once, ordered by
location.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from spane.errors import InvalidWorkflowError, Problem
from spane.schemas.draft_checks import draft_problems
from spane.schemas.suggestions import field_hint, ordered_problems
from spane.schemas.workflow import WorkflowSpec

_NODE_TAGS = frozenset(
    {
        "function",
        "http",
        "custom",
        "switch",
        "noop",
        "transform",
        "set",
        "delay",
        "wait_for_signal",
        "sub_workflow",
        "for_each",
        "while",
        "repeat",
        "break",
        "continue",
        "fail",
    }
)
_UNION_TAGS = frozenset({"cron", "event", "webhook", "named", "at_least"})


def _is_tag(loc: Sequence[int | str], index: int, text: str) -> bool:
    """Whether ``loc[index]`` is a tag pydantic inserted for a tagged union."""
    part = loc[index]
    previous = loc[index - 1] if index else None
    if not isinstance(part, str):
        return False
    if part in _NODE_TAGS and isinstance(previous, int) and index >= 2:
        return loc[index - 2] == "nodes"
    if part in _UNION_TAGS:
        return previous == "join" or (isinstance(previous, int) and text.startswith("triggers"))
    return False


def format_location(loc: Sequence[int | str]) -> str:
    """``('nodes', 3, 'function', 'after', 0)`` -> ``nodes[3].after[0]``."""
    text = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _is_tag(loc, index, text):
            text += f".{part}" if text else part
    return text or "(root)"


def problems_from_validation(error: ValidationError) -> list[Problem]:
    """Turn a pydantic error into located problems, dropping derived noise."""
    items = error.errors(include_url=False)
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for item in items:
        loc = item["loc"]
        nested = any(other["loc"][: len(loc)] == loc and other["loc"] != loc for other in items)
        if item["type"] == "too_short" and nested:
            continue  # a list "too short" only because its items failed
        message = str(item["msg"]).removeprefix("Value error, ")
        hint = None
        if item["type"] == "extra_forbidden":
            message, hint = "unknown field", field_hint(loc)
        location = format_location(loc)
        if (location, message) not in seen:
            seen.add((location, message))
            problems.append(Problem(location, message, hint))
    return problems


def parse_text(text: str, source: str = "<text>") -> Any:
    """Parse YAML (a superset of JSON) and return the raw document."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise InvalidWorkflowError([Problem(where, f"not valid YAML/JSON: {exc}")]) from None
    if not isinstance(document, dict):
        raise InvalidWorkflowError([Problem(source, "a workflow definition must be a mapping")])
    return document


def spec_from_data(data: Any) -> WorkflowSpec:
    """Validate a decoded document into a spec, reporting every structural problem."""
    try:
        return WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        workflow_id = data.get("id") if isinstance(data, dict) else None
        raise InvalidWorkflowError(
            _with_graph_problems(problems_from_validation(exc), data),
            str(workflow_id) if workflow_id else None,
        ) from None


def _with_graph_problems(problems: list[Problem], data: Any) -> list[Problem]:
    """Add what the compiler's graph checks would say, so one pass lists every problem.

    The unknown fields a type typo explains (``cases:`` on ``type: swtich``) are dropped.
    """
    draft = draft_problems(data)
    kept = [
        problem
        for problem in problems
        if not (problem.message == "unknown field" and problem.location in draft.explained)
    ]
    return ordered_problems([*kept, *draft.problems])


def load_workflow_text(text: str, source: str = "<text>") -> WorkflowSpec:
    """Parse and validate YAML or JSON text."""
    return spec_from_data(parse_text(text, source))


def load_workflow_file(path: str) -> WorkflowSpec:
    """Read a ``.yaml`` / ``.yml`` / ``.json`` file into a spec."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if path.endswith(".json"):
        try:
            return spec_from_data(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InvalidWorkflowError(
                [Problem(f"{path}:{exc.lineno}:{exc.colno}", f"not valid JSON: {exc.msg}")]
            ) from None
    return load_workflow_text(text, path)

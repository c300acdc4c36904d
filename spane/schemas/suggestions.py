"""Hints for a newcomer's mistakes in a definition, and the order problems are listed in. Pure.

- :func:`near_builtin_type`: ``type: swtich`` is one keystroke from ``switch``; any
  unknown type would otherwise silently be a custom pool of that name.
- :func:`node_type_problem`: that near miss as a :class:`~spane.errors.Problem` at
  ``nodes[i].type``, unless the node names its ``pool:`` (then the name is deliberate).
- :func:`field_hint`: ``functon:`` is not a field of a function node; ``did you mean
  'function'?``, from the fields of the model at that location.
- :func:`ordered_problems`: deduplicated, ordered by location (``nodes[2]`` before
  ``nodes[10]``), problems at one location in the order they were found.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag

from spane.errors import Problem
from spane.schemas.workflow import CONTROL_TYPES, TASK_TYPES_BUILTIN, WorkflowSpec

__all__ = [
    "BUILTIN_NODE_TYPES",
    "did_you_mean",
    "field_hint",
    "model_at",
    "near_builtin_type",
    "node_type_problem",
    "ordered_problems",
]

BUILTIN_NODE_TYPES = TASK_TYPES_BUILTIN | CONTROL_TYPES
TYPE_CUTOFF = 0.75
"""How close (difflib ratio) an unknown type must be to a built-in one to be a typo."""


def did_you_mean(name: str, candidates: Iterable[str], cutoff: float = 0.6) -> str | None:
    """``did you mean 'charge'?`` for the closest candidate, or ``None``."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=cutoff)
    return f"did you mean {matches[0]!r}?" if matches else None


def near_builtin_type(node_type: str) -> str | None:
    """The built-in node type ``node_type`` is a near miss of (``swtich`` -> ``switch``)."""
    if node_type in BUILTIN_NODE_TYPES:
        return None
    matches = difflib.get_close_matches(
        node_type, sorted(BUILTIN_NODE_TYPES), n=1, cutoff=TYPE_CUTOFF
    )
    return matches[0] if matches else None


def node_type_problem(node_type: Any, pool: Any, loc: str) -> Problem | None:
    """``type: swtich`` as a problem at ``<loc>.type``; None if fine or ``pool`` is named."""
    if not isinstance(node_type, str) or pool is not None:
        return None
    builtin = near_builtin_type(node_type)
    if builtin is None:
        return None
    return Problem(
        f"{loc}.type",
        f"unknown node type {node_type!r}",
        f"did you mean {builtin!r}? A custom type this close to a built-in one must "
        f"also set 'pool: {node_type}'",
    )


# ----------------------------------------------------------------- field name hints


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to what is inside."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _tag(member: Any) -> str | None:
    if get_origin(member) is not Annotated:
        return None
    tags = [meta.tag for meta in member.__metadata__ if isinstance(meta, Tag)]
    return tags[0] if tags else None


def _step(annotation: Any, part: int | str) -> Any:
    """The annotation one location part below ``annotation``, or None."""
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if isinstance(part, int):
        return get_args(annotation)[0] if origin in (tuple, list) else None
    if origin in (Union, types.UnionType):  # a tagged union: pydantic put the tag in loc
        return next((m for m in get_args(annotation) if _tag(m) == part), None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
    return None


def model_at(loc: Sequence[int | str], root: type[BaseModel] = WorkflowSpec) -> Any:
    """The pydantic model a (pydantic) location points into, or None."""
    current: Any = root
    for part in loc:
        current = _step(current, part)
        if current is None:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def field_names(model: type[BaseModel]) -> list[str]:
    """The names a definition may use for ``model``'s fields (aliases included)."""
    names = []
    for name, info in model.model_fields.items():
        names.append(info.alias or name)
    return names


def field_hint(loc: Sequence[int | str]) -> str | None:
    """For an unknown field at ``loc``: the closest allowed field name of its model."""
    if not loc or not isinstance(loc[-1], str):
        return None
    model = model_at(loc[:-1])
    return None if model is None else did_you_mean(loc[-1], field_names(model))


# ----------------------------------------------------------------- order


def _location_key(location: str) -> tuple[str | int, ...]:
    """``nodes[10].after[2]`` -> ``('nodes[', 10, '].after[', 2, ']')`` (numbers as numbers)."""
    parts = re.split(r"(\d+)", location)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts))


def ordered_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Without repeats (same location and message), ordered by location (stable)."""
    unique: dict[tuple[str, str], Problem] = {}
    for problem in problems:
        unique.setdefault((problem.location, problem.message), problem)
    return sorted(unique.values(), key=lambda problem: _location_key(problem.location))

"""SPANE: an event-driven, distributed workflow orchestration engine.

The public names are imported on first access (:pep:`562`), so that importing a
submodule -- ``spane.cli.main`` for ``spane --help``, say -- does not load the engine.
``from spane import Engine, task`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spane.engine import Engine, ExecutionResult, ExecutionSnapshot
    from spane.errors import (
        CommandRejectedError,
        InvalidWorkflowError,
        SpaneError,
        TaskError,
    )
    from spane.schemas.loader import load_workflow_file, load_workflow_text
    from spane.schemas.state import ExecutionStatus, NodeStatus
    from spane.schemas.workflow import WorkflowSpec
    from spane.workers.context import TaskContext
    from spane.workers.registry import TaskRegistry, task, task_type

__version__ = "0.1.0"

__all__ = [
    "CommandRejectedError",
    "Engine",
    "ExecutionResult",
    "ExecutionSnapshot",
    "ExecutionStatus",
    "InvalidWorkflowError",
    "NodeStatus",
    "SpaneError",
    "TaskContext",
    "TaskError",
    "TaskRegistry",
    "WorkflowSpec",
    "load_workflow_file",
    "load_workflow_text",
    "task",
    "task_type",
]

_SOURCES = {
    "Engine": "spane.engine",
    "ExecutionResult": "spane.engine",
    "ExecutionSnapshot": "spane.engine",
    "CommandRejectedError": "spane.errors",
    "InvalidWorkflowError": "spane.errors",
    "SpaneError": "spane.errors",
    "TaskError": "spane.errors",
    "load_workflow_file": "spane.schemas.loader",
    "load_workflow_text": "spane.schemas.loader",
    "ExecutionStatus": "spane.schemas.state",
    "NodeStatus": "spane.schemas.state",
    "WorkflowSpec": "spane.schemas.workflow",
    "TaskContext": "spane.workers.context",
    "TaskRegistry": "spane.workers.registry",
    "task": "spane.workers.registry",
    "task_type": "spane.workers.registry",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first access and cache it in the package's namespace."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'spane' has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""SPANE: an event-driven, distributed workflow orchestration engine."""

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

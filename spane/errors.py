"""The SPANE exception tree.

Every error SPANE raises derives from :class:`SpaneError`; each subclass also inherits
the standard-library type that fits it, so ``except ValueError`` keeps working::

    SpaneError
    ├── ConfigurationError(SpaneError, RuntimeError)   settings missing or contradictory
    ├── InvalidWorkflowError(SpaneError, ValueError)    a definition with problems (all listed)
    ├── ExpressionError(SpaneError, ValueError)         a CEL / ${ } expression problem
    │   ├── ExpressionSyntaxError                        does not parse
    │   └── ExpressionEvaluationError                    failed at run time
    ├── InvalidInputError(SpaneError, ValueError)       an execution input / signal payload refused
    ├── InvalidMessageError(SpaneError, ValueError)     a bus message that cannot be decoded
    ├── NotFoundError(SpaneError, LookupError)
    │   ├── WorkflowNotFoundError                        no such workflow (version)
    │   ├── ExecutionNotFoundError                       no such execution
    │   └── TaskNotFoundError                            no task registered under a name
    ├── CommandRejectedError(SpaneError, RuntimeError)  a signal/pause/resume/cancel refused
    ├── StateConflictError(SpaneError, RuntimeError)    optimistic concurrency lost; retry
    └── TaskError(SpaneError, Exception)                raised by user tasks to steer retries
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SpaneError(Exception):
    """Base class of every error raised by SPANE."""


class ConfigurationError(SpaneError, RuntimeError):
    """Settings are missing or contradictory (e.g. a distributed process without URLs)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a workflow definition.

    ``location`` is a dotted path into the definition (``nodes[3].after[0]``),
    ``hint`` an optional suggestion (``did you mean 'charge'?``).
    """

    location: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, str | None]:
        return {"location": self.location, "message": self.message, "hint": self.hint}


class InvalidWorkflowError(SpaneError, ValueError):
    """A workflow definition has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: Sequence[Problem], workflow_id: str | None = None) -> None:
        self.problems = tuple(problems)
        self.workflow_id = workflow_id
        name = f"workflow {workflow_id!r}" if workflow_id else "workflow"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{name} has {len(self.problems)} problem(s):\n{lines}")


class ExpressionError(SpaneError, ValueError):
    """An expression could not be compiled or evaluated."""


class ExpressionSyntaxError(ExpressionError):
    """An expression does not parse."""


class ExpressionEvaluationError(ExpressionError):
    """An expression failed at run time (missing key, wrong type, ...)."""


class InvalidInputError(SpaneError, ValueError):
    """An execution input or a signal payload was refused (schema, size)."""


class InvalidMessageError(SpaneError, ValueError):
    """A message on the bus could not be decoded or validated."""


class NotFoundError(SpaneError, LookupError):
    """Something looked up by name or id does not exist."""


class WorkflowNotFoundError(NotFoundError):
    """No workflow (or no such version of it) is registered."""


class ExecutionNotFoundError(NotFoundError):
    """No execution has that id."""


class TaskNotFoundError(NotFoundError):
    """No task function or task type is registered under that name."""


class CommandRejectedError(SpaneError, RuntimeError):
    """A control command (signal, pause, resume, cancel) was refused; ``str()`` says why."""


class StateConflictError(SpaneError, RuntimeError):
    """Another writer changed the execution state first; reload and decide again."""


class TaskError(SpaneError):
    """Raised by task code to fail the current attempt and steer what happens next.

    ``non_retryable=True`` fails the node at once, whatever its retry policy says.
    ``retry_after`` (seconds) overrides the backoff delay before the next attempt.
    ``details`` is any JSON-serialisable value, recorded with the error.
    """

    def __init__(
        self,
        message: str,
        *,
        non_retryable: bool = False,
        retry_after: float | None = None,
        details: object = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.non_retryable = non_retryable
        self.retry_after = retry_after
        self.details = details
        self.type = type or "TaskError"


_TRANSIENT_NAMES = frozenset(
    {
        # redis-py
        "ConnectionError",
        "TimeoutError",
        "BusyLoadingError",
        "ClusterDownError",
        "TryAgainError",
        "MasterDownError",
        # pymongo
        "AutoReconnect",
        "ConnectionFailure",
        "NetworkTimeout",
        "ServerSelectionTimeoutError",
        "NotPrimaryError",
        # aio-pika / aiormq
        "AMQPConnectionError",
        "ChannelInvalidStateError",
        "ConnectionClosed",
    }
)
_TRANSIENT_MODULES = ("redis", "pymongo", "aio_pika", "aiormq")


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) means a server is unreachable
    for now -- Redis, MongoDB or the broker down, restarting, failing over, or a network
    timeout -- rather than something wrong with the work itself.

    Such failures only delay work: a consumer keeps the message and tries again when the
    server is back (never dead-letters it). Told by the standard-library types
    (``ConnectionError``, ``TimeoutError``) and by the class names of the drivers'
    connection errors, so this module imports no driver.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | TimeoutError):
            return True
        kind = type(current)
        if kind.__module__.startswith(_TRANSIENT_MODULES) and any(
            base.__name__ in _TRANSIENT_NAMES for base in kind.__mro__
        ):
            return True
        current = current.__cause__ or current.__context__
    return False

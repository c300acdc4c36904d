"""The workflow definition language (DESIGN §2) as pydantic models.

These models are what YAML/JSON definitions are validated into, and they are also the
Python "workflow as code" API::

    WorkflowSpec(id="hello", nodes=[FunctionNode(id="greet", function="demo.greet")])

Structure is checked here (types, unknown fields, value ranges); graph-level checks
(references, cycles, expressions) belong to the compiler, which reports every problem
at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from spane.schemas.durations import Duration

ID_PATTERN = r"^[a-z0-9][a-z0-9\-_.]*$"
NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
POOL_PATTERN = r"^[a-z][a-z0-9\-_.]*$"
"""A worker pool's name (like a custom node type's): also the last part of its queue's
name, ``<namespace>.tasks.<pool>``."""
POOL_MAX_LENGTH = 128

CONTROL_TYPES = frozenset(
    {
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
"""Node types the orchestrator executes itself (no worker round trip)."""

TASK_TYPES_BUILTIN = frozenset({"function", "http"})
LOOP_TYPES = frozenset({"for_each", "while", "repeat"})
RESERVED_PORTS = frozenset({"error", "always", "default"})


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class RetryPolicy(_Model):
    """How a task node's failed attempts are retried.

    Every field left out inherits the workflow's ``defaults.retry`` (then the built-in
    default below). Delays between attempts are durable timers, never sleeps.
    """

    max_attempts: int | None = Field(default=None, ge=1, le=1000)
    """Total attempts including the first; ``1`` means no retry. Built-in default 1."""
    initial_interval: Duration | None = None
    """Delay before the second attempt. Built-in default 1s."""
    backoff: float | None = Field(default=None, ge=1.0, le=100.0)
    """Each further delay is the previous one times this. Built-in default 2.0."""
    max_interval: Duration | None = None
    """Upper bound of one delay. Built-in default 60s."""
    jitter: bool | None = None
    """Spread delays randomly over [50 %, 100 %] of their value. Built-in default true."""
    non_retryable: tuple[str, ...] | None = None
    """Error types (exception class names, ``Timeout``, ...) that are never retried."""


def _unset(value: Any) -> bool:
    """Leave an optional field added later out of a dump while unset, so the checksum of
    a definition that does not use it stays what it was."""
    return value is None


def pool_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a pool (or a task type), or None."""
    if not name:
        return "a pool name cannot be empty"
    if len(name) > POOL_MAX_LENGTH:
        return f"pool name {name[:20]!r}... is longer than {POOL_MAX_LENGTH} characters"
    if re.fullmatch(POOL_PATTERN, name) is None:
        return (
            f"{name!r} is not a valid pool name: a lowercase letter, then lowercase "
            "letters, digits, '-', '_' or '.'"
        )
    return None


def _check_pool(name: str) -> str:
    problem = pool_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


PoolName = Annotated[str, AfterValidator(_check_pool)]


def _pool_field() -> Any:
    return Field(
        default=None,
        exclude_if=_unset,
        json_schema_extra={"pattern": POOL_PATTERN, "maxLength": POOL_MAX_LENGTH},
    )


class Defaults(_Model):
    """Values every node inherits unless it sets its own."""

    timeout: Duration | None = None
    retry: RetryPolicy | None = None
    pool: PoolName | None = _pool_field()
    """The worker pool of ``function`` nodes that name none (other task types keep the
    pool named like their type unless they name one)."""


class AtLeast(_Model):
    """Join that fires once ``at_least`` upstream edges have fired."""

    at_least: int = Field(ge=1)


def _join_tag(value: Any) -> str:
    return "named" if isinstance(value, str) else "at_least"


Join = Annotated[
    Annotated[Literal["all", "any"], Tag("named")] | Annotated[AtLeast, Tag("at_least")],
    Discriminator(_join_tag),
]
Aggregate = Literal["map", "list", "merge", "first"]


class _NodeBase(_Model):
    id: str = Field(pattern=NODE_ID_PATTERN, max_length=128)
    name: str | None = None
    description: str | None = None
    after: tuple[str, ...] = ()
    """Upstream references: ``id`` (success), ``id.error``, ``id.always``, ``id.<case>``."""
    join: Join = "all"
    aggregate: Aggregate = "map"
    when: str | None = None
    """CEL guard evaluated when the node becomes ready; false skips it."""
    input: Any = None
    """Overrides what the node receives; strings may contain ``${ expr }``."""

    @field_validator("after", mode="before")
    @classmethod
    def _after_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class _TaskNodeBase(_NodeBase):
    timeout: Duration | None = None
    """Per attempt; a task that neither finishes nor heartbeats in time is retried."""
    retry: RetryPolicy | None = None
    priority: int | None = Field(default=None, ge=0, le=9)
    pool: PoolName | None = _pool_field()
    """The worker pool (queue) this node's attempts go to; default: ``defaults.pool``
    for a ``function`` node, else the pool named like the node's type."""


class FunctionNode(_TaskNodeBase):
    """Calls a registered Python function on the ``function`` pool."""

    type: Literal["function"] = "function"
    function: str = Field(min_length=1)


class HttpRequest(_Model):
    method: str = "GET"
    url: str = Field(min_length=1)
    headers: dict[str, Any] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    body: str | None = None
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequest:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give either 'json' or 'body', not both")
        return self


class HttpExpect(_Model):
    status: tuple[int, ...] = ()
    """Accepted status codes; empty means any 2xx."""


class HttpNode(_TaskNodeBase):
    """Performs an HTTP request on the ``http`` pool."""

    type: Literal["http"] = "http"
    request: HttpRequest
    expect: HttpExpect = Field(default_factory=HttpExpect)


class CustomNode(_TaskNodeBase):
    """Any other type name: handled by the custom pool of that name."""

    type: str = Field(pattern=r"^[a-z][a-z0-9\-_.]*$")
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in CONTROL_TYPES or value in TASK_TYPES_BUILTIN:
            raise ValueError(f"{value!r} is a built-in node type")
        return value


class SwitchCase(_Model):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    when: str


class SwitchNode(_NodeBase):
    """Multi-way branch: the first case whose ``when`` holds fires its port, else ``default``."""

    type: Literal["switch"] = "switch"
    cases: tuple[SwitchCase, ...] = Field(min_length=1)


class NoopNode(_NodeBase):
    """Passes its input through; an explicit join point."""

    type: Literal["noop"] = "noop"


class TransformNode(_NodeBase):
    """Computes ``output`` from the context (CEL macros and SPANE functions)."""

    type: Literal["transform"] = "transform"
    output: Any


class SetNode(_NodeBase):
    """Updates execution variables; its output is the map of values it set."""

    type: Literal["set"] = "set"
    vars: dict[str, Any] = Field(min_length=1)


class DelayNode(_NodeBase):
    """A durable timer: waits ``duration`` or ``until`` an ISO 8601 time."""

    type: Literal["delay"] = "delay"
    duration: Duration | None = None
    until: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> DelayNode:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a delay needs exactly one of 'duration' or 'until'")
        return self


class WaitForSignalNode(_NodeBase):
    """Waits for a named signal; its output is the signal's payload."""

    type: Literal["wait_for_signal"] = "wait_for_signal"
    signal: str = Field(min_length=1)
    signal_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    timeout: Duration | None = None


class SubWorkflowNode(_NodeBase):
    """Runs another registered workflow as a child execution."""

    type: Literal["sub_workflow"] = "sub_workflow"
    workflow: str = Field(pattern=ID_PATTERN)
    version: int | None = Field(default=None, ge=1)
    wait: bool = True
    timeout: Duration | None = None
    retry: RetryPolicy | None = None


class InlineBody(_Model):
    """A loop body: a small inline workflow."""

    nodes: tuple[NodeSpec, ...] = Field(min_length=1)
    output: Any = None


class _LoopBase(_NodeBase):
    body: InlineBody | None = None
    workflow: str | None = Field(default=None, pattern=ID_PATTERN)
    max_iterations: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _one_body(self) -> _LoopBase:
        if (self.body is None) == (self.workflow is None):
            raise ValueError("a loop needs exactly one of 'body' or 'workflow'")
        return self


class ForEachNode(_LoopBase):
    """Runs the body once per item of ``items``; output: the bodies' outputs in order."""

    type: Literal["for_each"] = "for_each"
    items: Any
    concurrency: int = Field(default=10, ge=1, le=10_000)


class WhileNode(_LoopBase):
    """Runs the body while ``condition`` holds (checked before each iteration)."""

    type: Literal["while"] = "while"
    condition: str


class RepeatNode(_LoopBase):
    """Runs the body ``times`` times."""

    type: Literal["repeat"] = "repeat"
    times: int | str


class BreakNode(_NodeBase):
    """Inside a loop body: ends the loop (when ``when`` holds)."""

    type: Literal["break"] = "break"


class ContinueNode(_NodeBase):
    """Inside a loop body: ends the current iteration (when ``when`` holds)."""

    type: Literal["continue"] = "continue"


class FailNode(_NodeBase):
    """Fails with ``error`` (a message, or ``{type, message, details}``)."""

    type: Literal["fail"] = "fail"
    error: Any = "failed"


_TAGGED: dict[str, type[_NodeBase]] = {
    "function": FunctionNode,
    "http": HttpNode,
    "switch": SwitchNode,
    "noop": NoopNode,
    "transform": TransformNode,
    "set": SetNode,
    "delay": DelayNode,
    "wait_for_signal": WaitForSignalNode,
    "sub_workflow": SubWorkflowNode,
    "for_each": ForEachNode,
    "while": WhileNode,
    "repeat": RepeatNode,
    "break": BreakNode,
    "continue": ContinueNode,
    "fail": FailNode,
}


def _node_tag(value: Any) -> str:
    node_type = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if node_type is None:
        return "function"
    return node_type if node_type in _TAGGED else "custom"


NodeSpec = Annotated[
    Annotated[FunctionNode, Tag("function")]
    | Annotated[HttpNode, Tag("http")]
    | Annotated[SwitchNode, Tag("switch")]
    | Annotated[NoopNode, Tag("noop")]
    | Annotated[TransformNode, Tag("transform")]
    | Annotated[SetNode, Tag("set")]
    | Annotated[DelayNode, Tag("delay")]
    | Annotated[WaitForSignalNode, Tag("wait_for_signal")]
    | Annotated[SubWorkflowNode, Tag("sub_workflow")]
    | Annotated[ForEachNode, Tag("for_each")]
    | Annotated[WhileNode, Tag("while")]
    | Annotated[RepeatNode, Tag("repeat")]
    | Annotated[BreakNode, Tag("break")]
    | Annotated[ContinueNode, Tag("continue")]
    | Annotated[FailNode, Tag("fail")]
    | Annotated[CustomNode, Tag("custom")],
    Discriminator(_node_tag),
]
"""Any node; ``type`` selects the model and unknown types are custom pools."""

TaskNode = FunctionNode | HttpNode | CustomNode


class CronTrigger(_Model):
    cron: str = Field(min_length=1)
    timezone: str = "UTC"
    input: Any = None


class EventTrigger(_Model):
    event: str = Field(min_length=1)
    """Routing-key pattern on ``spane.triggers`` (``*`` one word, ``#`` any words)."""
    filter: str | None = None
    input: Any = None


class WebhookSpec(_Model):
    path: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9\-_./]*$")
    secret_env: str | None = None


class WebhookTrigger(_Model):
    webhook: WebhookSpec
    input: Any = None


def _trigger_tag(value: Any) -> str | None:
    keys = value.keys() if isinstance(value, dict) else vars(value).keys()
    for kind in ("cron", "event", "webhook"):
        if kind in keys:
            return kind
    return None


Trigger = Annotated[
    Annotated[CronTrigger, Tag("cron")]
    | Annotated[EventTrigger, Tag("event")]
    | Annotated[WebhookTrigger, Tag("webhook")],
    Discriminator(
        _trigger_tag,
        custom_error_type="trigger_kind",
        custom_error_message="a trigger needs one of 'cron', 'event' or 'webhook'",
    ),
]


class WorkflowSpec(_Model):
    """A whole workflow definition."""

    id: str = Field(pattern=ID_PATTERN, max_length=128)
    name: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    timeout: Duration | None = None
    max_concurrency: int | None = Field(default=None, ge=1)
    max_executions: int | None = Field(default=None, ge=1)
    defaults: Defaults = Field(default_factory=Defaults)
    vars: dict[str, Any] = Field(default_factory=dict)
    """Initial execution variables."""
    triggers: tuple[Trigger, ...] = ()
    nodes: tuple[NodeSpec, ...] = Field(min_length=1)
    output: Any = None


InlineBody.model_rebuild()

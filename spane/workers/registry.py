"""The task registry: ``@spane.task("name")`` functions and ``@spane.task_type("type")``
handlers of custom pools, with their call signatures inspected once."""

from __future__ import annotations

import asyncio
import inspect
import typing
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from spane.errors import TaskError, TaskNotFoundError
from spane.workers.context import TaskContext

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class TaskHandler:
    """A registered callable and how to call it."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    input_adapter: TypeAdapter[Any] | None
    """Validates the first parameter when it is annotated with a pydantic model."""
    wants_config: bool
    context_param: str | None

    async def call(
        self, data: Any, config: dict[str, Any] | None, ctx: TaskContext, executor: Executor | None
    ) -> Any:
        args: list[Any] = [self._validated(data)]
        if self.wants_config:
            args.append(config or {})
        kwargs = {self.context_param: ctx} if self.context_param else {}
        if self.is_async:
            return await self.func(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, lambda: self.func(*args, **kwargs))

    def _validated(self, data: Any) -> Any:
        if self.input_adapter is None:
            return data
        try:
            return self.input_adapter.validate_python(data)
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise TaskError(
                f"input of task {self.name!r} is invalid: {fields}",
                non_retryable=True,
                type="InvalidTaskInput",
            ) from None


def _inspect(name: str, func: Callable[..., Any], custom: bool) -> TaskHandler:
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError):
        hints = {}
    params = list(signature.parameters.values())
    context_param = None
    for param in params:
        if param.name == "ctx" or hints.get(param.name) is TaskContext:
            context_param = param.name
    positional = [p for p in params if p.name != context_param]
    if not positional:
        raise TypeError(f"task {name!r}: the first parameter must receive the node's input")
    if custom and len(positional) < 2:
        raise TypeError(f"task type {name!r}: handlers take (data, config[, ctx])")
    annotation = hints.get(positional[0].name)
    adapter = None
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        adapter = TypeAdapter(annotation)
    return TaskHandler(
        name=name,
        func=func,
        is_async=inspect.iscoroutinefunction(func),
        input_adapter=adapter,
        wants_config=custom,
        context_param=context_param,
    )


class TaskRegistry:
    """Functions (``function`` pool) and custom task types by name."""

    def __init__(self) -> None:
        self.functions: dict[str, TaskHandler] = {}
        self.task_types: dict[str, TaskHandler] = {}

    def task(self, name: str) -> Callable[[F], F]:
        """Register a function under ``name`` for ``function:`` nodes."""

        def register(func: F) -> F:
            self.functions[name] = _inspect(name, func, custom=False)
            return func

        return register

    def task_type(self, name: str) -> Callable[[F], F]:
        """Register the handler of custom node type ``name``."""

        def register(func: F) -> F:
            if name in ("function", "http"):
                raise ValueError(f"{name!r} is a built-in pool")
            self.task_types[name] = _inspect(name, func, custom=True)
            return func

        return register

    def function(self, name: str) -> TaskHandler:
        handler = self.functions.get(name)
        if handler is None:
            raise TaskNotFoundError(_missing("function", name, self.functions))
        return handler

    def handler_for_type(self, task_type: str) -> TaskHandler:
        handler = self.task_types.get(task_type)
        if handler is None:
            raise TaskNotFoundError(_missing("task type", task_type, self.task_types))
        return handler


def _missing(kind: str, name: str, known: dict[str, TaskHandler]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no {kind} {name!r} is registered{hint}; import the module that defines it"


default_registry = TaskRegistry()
"""Where ``spane.task`` and ``spane.task_type`` register."""

task = default_registry.task
task_type = default_registry.task_type

"""A working copy of one execution's state, recording what the decision core changes.

Adapters load a view (the nodes an event needs, or all of them), the core reads and
writes it, and the adapter persists ``changed_nodes`` and ``meta`` atomically, guarded
by ``revision`` (optimistic concurrency). Nodes never written read as PENDING; reading a
node a partial load did not fetch raises :class:`MissingNodesError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic_core import from_json

from spane.schemas.state import ExecutionMeta, NodeState

_PENDING = NodeState()


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()
"""A loop data field that was never written (the store answered: no such field)."""


def loop_field(node_id: str, attempt: int, kind: Literal["i", "r"], index: int) -> str:
    """The loop data field of a for_each node's item (``i``) or result (``r``) ``index``
    in the node's ``attempt`` (a re-run of the node never reads an earlier run's data)."""
    return f"{node_id}:{attempt}:{kind}:{index}"


class MissingLoopDataError(LookupError):
    """The core read loop data fields the adapter did not load: load them and decide
    the event again on a fresh view (the core is pure, so deciding again is safe)."""

    def __init__(self, fields: Iterable[str]) -> None:
        self.fields = tuple(fields)
        super().__init__(f"loop data not loaded: {', '.join(self.fields[:5])}")


class MissingNodesError(LookupError):
    """The core read node states a partial load did not fetch: load every node and
    decide again on a fresh view (the core is pure, so deciding again is safe)."""

    def __init__(self, node_ids: Iterable[str]) -> None:
        self.node_ids = tuple(node_ids)
        super().__init__(f"node states not loaded: {', '.join(self.node_ids[:5]) or 'all'}")


class _Committed(Mapping[str, NodeState]):
    """The node states a view was loaded with, under the ones its writer committed since
    (:meth:`ExecutionView.settled`): each commit adds its changes here, in O(changes),
    without copying or touching what was loaded."""

    __slots__ = ("_below", "_own")

    def __init__(self, below: Mapping[str, NodeState]) -> None:
        self._below = below
        self._own: dict[str, NodeState] = {}

    def get(self, node_id: str, default: Any = None) -> Any:
        state = self._own.get(node_id)
        return state if state is not None else self._below.get(node_id, default)

    def __getitem__(self, node_id: str) -> NodeState:
        state = self._own.get(node_id)
        return state if state is not None else self._below[node_id]

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._own or node_id in self._below

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        yield from (node_id for node_id in self._below if node_id not in self._own)

    def __len__(self) -> int:
        return len(self._own) + sum(1 for node_id in self._below if node_id not in self._own)


M = TypeVar("M", bound=BaseModel)


def evolve(model: M, changes: dict[str, Any]) -> M:
    """``model.model_copy(update=changes)`` at half the cost (the hot path of the core).

    Records are frozen and their fields are never mutated in place, so a shallow copy
    of the field dict is a correct copy. ``tests/unit/test_view.py`` pins the equality
    with ``model_copy``.
    """
    cls = type(model)
    new = cls.__new__(cls)
    object.__setattr__(new, "__dict__", {**model.__dict__, **changes})
    object.__setattr__(
        new, "__pydantic_fields_set__", model.__pydantic_fields_set__ | changes.keys()
    )
    object.__setattr__(new, "__pydantic_extra__", None)
    object.__setattr__(new, "__pydantic_private__", None)
    return new


class ExecutionView:
    """Besides node states, a view holds *loop data*: a for_each node's items and
    iteration results, one field each (:func:`loop_field`), kept beside the node states
    so an iteration's event reads and writes O(1) of them. ``loops`` holds the fields
    the adapter loaded (values, or :data:`ABSENT`); ``loops_complete`` says it holds
    every field there is (a field not in it was never written). Reading a field that
    was not loaded raises :class:`MissingLoopDataError`.

    Node states work the same way: ``fetched`` None says ``nodes`` holds every node
    ever written; else (a partial load) ``fetched`` names the nodes read (``nodes``
    holds those of them ever written), and reading any other node raises
    :class:`MissingNodesError`.

    The execution's input is read through :attr:`input`. A store may keep it apart from
    the meta (written once, when the execution is created, never again by a commit:
    ``input_apart``); its view's ``meta.input`` is then None and ``input_json`` holds
    the input's JSON, decoded the first time :attr:`input` is read."""

    __slots__ = (
        "_active",
        "_base",
        "_changed",
        "_deciding",
        "_fetched",
        "_input",
        "_input_json",
        "_loops",
        "_loops_changed",
        "_loops_complete",
        "_loops_extra",
        "_meta",
        "_meta_changed",
        "_queue",
        "_sets_stale",
        "held_bytes",
        "input_apart",
        "revision",
    )

    def __init__(
        self,
        meta: ExecutionMeta,
        nodes: Mapping[str, NodeState],
        revision: int = 0,
        loops: Mapping[str, Any] | None = None,
        loops_complete: bool = True,
        *,
        fetched: Collection[str] | None = None,
        input_json: bytes | str | None = None,
    ) -> None:
        self._meta = meta
        self._input_json = input_json
        self._input: Any = ABSENT
        self.input_apart = input_json is not None
        """Whether the store keeps the input apart from the meta (its commits leave it)."""
        self.held_bytes = 0
        """About how many bytes of encoded state this view holds of its own (set by a
        store whose views copy what they read; 0: it shares the store's objects)."""
        self._base = nodes
        self._fetched = None if fetched is None else frozenset(fetched)
        self._changed: dict[str, NodeState] = {}
        self._meta_changed = False
        self.revision = revision
        self._loops: Mapping[str, Any] = loops if loops is not None else {}
        self._loops_complete = loops_complete
        self._loops_extra: dict[str, Any] = {}
        self._loops_changed: dict[str, Any] = {}
        self._active: dict[str, None] | None = None
        self._queue: deque[str] | None = None
        self._sets_stale = False
        self._deciding = False

    @property
    def meta(self) -> ExecutionMeta:
        """The execution's meta. While the core decides, its ``active`` and ``queue``
        may lag: the core reads them through :meth:`active` and :meth:`queue`."""
        if self._sets_stale and not self._deciding:
            self._write_sets()
        return self._meta

    @property
    def input(self) -> Any:
        """The execution's input (decoded on first use if the store keeps it apart)."""
        if self._input_json is None:
            return self._meta.input
        if self._input is ABSENT:
            self._input = from_json(self._input_json)
        return self._input

    def full_meta(self) -> ExecutionMeta:
        """The meta with the input in it, as callers outside the core see an execution."""
        meta = self.meta
        return meta if self._input_json is None else evolve(meta, {"input": self.input})

    def update_meta(self, **changes: Any) -> ExecutionMeta:
        self._meta = evolve(self._meta, changes)
        self._meta_changed = True
        if "active" in changes:
            self._active = None
        if "queue" in changes:
            self._queue = None
        return self._meta

    # ----------------------------------------------------- active and queue
    # ``meta.active`` and ``meta.queue`` change on nearly every event: a tuple rebuilt
    # per change made an event O(n) in the nodes running (a 1 -> n -> 1 fan-out
    # O(n^2)). While the core decides they live here, as an ordered set and a deque
    # (O(1) per change), and are written back to the meta once, when it is read
    # outside a decision (by the adapter, to commit).
    @contextmanager
    def deciding(self) -> Iterator[None]:
        """The core's decision in progress: ``meta.active`` / ``meta.queue`` may lag."""
        self._deciding = True
        try:
            yield
        finally:
            self._deciding = False

    def active(self) -> Collection[str]:
        """Nodes that are RUNNING or WAITING, in the order they became so (a snapshot
        is needed to change the set while iterating over it)."""
        return self._active if self._active is not None else self._meta.active

    def set_active(self, node_id: str, active: bool) -> None:
        if self._active is None:
            self._active = dict.fromkeys(self._meta.active)
        if active and node_id not in self._active:
            self._active[node_id] = None
        elif not active and node_id in self._active:
            del self._active[node_id]
        else:
            return
        self._sets_changed()

    def queue(self) -> Sequence[str]:
        """READY nodes waiting for capacity or resume, in dispatch order."""
        return self._queue if self._queue is not None else self._meta.queue

    def insert_queued(self, position: int, node_id: str) -> None:
        self._own_queue().insert(position, node_id)
        self._sets_changed()

    def pop_queued(self) -> str:
        """The first queued node, out of the queue."""
        node_id = self._own_queue().popleft()
        self._sets_changed()
        return node_id

    def remove_queued(self, node_id: str) -> None:
        self._own_queue().remove(node_id)
        self._sets_changed()

    def _own_queue(self) -> deque[str]:
        if self._queue is None:
            self._queue = deque(self._meta.queue)
        return self._queue

    def _sets_changed(self) -> None:
        self._sets_stale = True
        self._meta_changed = True

    def _write_sets(self) -> None:
        changes: dict[str, Any] = {}
        if self._active is not None:
            changes["active"] = tuple(self._active)
        if self._queue is not None:
            changes["queue"] = tuple(self._queue)
        self._sets_stale = False
        self._meta = evolve(self._meta, changes)

    def node(self, node_id: str) -> NodeState:
        state = self._changed.get(node_id)
        if state is not None:
            return state
        state = self._base.get(node_id)
        if state is not None:
            return state
        if self._fetched is None or node_id in self._fetched:
            return _PENDING
        raise MissingNodesError((node_id,))

    def update_node(self, node_id: str, **changes: Any) -> NodeState:
        state = evolve(self.node(node_id), changes)
        self._changed[node_id] = state
        return state

    @property
    def changed_nodes(self) -> dict[str, NodeState]:
        return self._changed

    @property
    def dirty(self) -> bool:
        return self._meta_changed or bool(self._changed) or bool(self._loops_changed)

    def all_nodes(self) -> dict[str, NodeState]:
        """Every node state, with this view's changes applied (a full load's view)."""
        if self._fetched is not None:
            raise MissingNodesError(())
        return {**self._base, **self._changed}

    def settled(self, revision: int) -> ExecutionView:
        """The view of the state this one's commit stored (at ``revision``), for the
        same writer's next decision without loading again. Its node states are this
        view's with the changes applied; its loop data is left out (a read of it raises
        :class:`MissingLoopDataError`: the writer loads). This view must not be used
        after: the two share their node states."""
        base = self._base if isinstance(self._base, _Committed) else _Committed(self._base)
        base._own.update(self._changed)
        view = ExecutionView(
            self.meta, base, revision, {}, False, fetched=self._fetched, input_json=self._input_json
        )
        view._input = self._input
        view.input_apart = self.input_apart
        view.held_bytes = self.held_bytes
        return view

    # ------------------------------------------------------------- loop data
    def loop_values(self, fields: Iterable[str]) -> list[Any]:
        """The values of loop data fields (:data:`ABSENT` where none was written)."""
        values: list[Any] = []
        missing: list[str] = []
        for name in fields:
            if name in self._loops_changed:
                values.append(self._loops_changed[name])
            elif name in self._loops_extra:
                values.append(self._loops_extra[name])
            elif name in self._loops:
                values.append(self._loops[name])
            elif self._loops_complete:
                values.append(ABSENT)
            else:
                missing.append(name)
        if missing:
            raise MissingLoopDataError(missing)
        return values

    def set_loop_values(self, values: Mapping[str, Any]) -> None:
        self._loops_changed.update(values)

    def add_loaded_loop_values(self, values: Mapping[str, Any]) -> None:
        """The adapter loaded more fields (after :class:`MissingLoopDataError`)."""
        self._loops_extra.update(values)

    @property
    def changed_loop_values(self) -> dict[str, Any]:
        return self._loops_changed

    def all_loop_values(self) -> dict[str, Any]:
        """Every loop data field known, with this view's writes applied."""
        return {**self._loops, **self._loops_extra, **self._loops_changed}

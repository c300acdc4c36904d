"""How :class:`~spane.state.redis.RedisStateStore` encodes script arguments and
decodes Redis replies (bytes, unless the client decodes responses)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic_core import from_json, to_json

from spane.schemas.claims import ClaimInfo
from spane.schemas.commands import Command
from spane.schemas.messages import TaskResult
from spane.schemas.state import ExecutionMeta, NodeState, Timer
from spane.schemas.view import ABSENT, ExecutionView, evolve
from spane.state.base import Applied, ClaimOutcome, TaskClaim
from spane.state.serde import decode_commands, encode_commands

Loaded = tuple[ExecutionView | None, dict[str, Applied]]
"""One execution's entry in a :meth:`~spane.state.base.StateStore.load_many` answer."""


def text(value: object) -> str:
    """A string reply (bytes unless the client decodes responses)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, str):
        return value
    raise TypeError(f"unexpected Redis reply {value!r:.100}")


def node_pairs(nodes: Mapping[str, NodeState]) -> list[str]:
    """Node id / NodeState JSON pairs, flat (script arguments)."""
    pairs: list[str] = []
    for node_id, state in nodes.items():
        pairs += (node_id, state.model_dump_json())
    return pairs


def loop_pairs(values: Mapping[str, Any]) -> list[str | bytes]:
    """Loop data field / JSON pairs, flat (script arguments)."""
    pairs: list[str | bytes] = []
    for name, value in values.items():
        pairs += (name, to_json(value))
    return pairs


def timer_args(cancelled: Sequence[str], scheduled: Sequence[Timer]) -> list[str]:
    """The timer ids cancelled, then id / fire_at / Timer JSON per timer scheduled, flat
    (the arguments ``write_timers`` of the scripts reads)."""
    args = list(cancelled)
    for timer in scheduled:
        if not math.isfinite(timer.fire_at):  # Redis would refuse it mid-script
            raise ValueError(f"timer {timer.id!r} fires at {timer.fire_at!r}: not a time")
        args += (timer.id, repr(timer.fire_at), timer.model_dump_json())
    return args


def event_pairs(records: Mapping[str, Sequence[Command]]) -> list[str | bytes]:
    """Event id / recorded commands JSON pairs, flat (script arguments)."""
    pairs: list[str | bytes] = []
    for event_id, commands in records.items():
        pairs += (event_id, encode_commands(commands))
    return pairs


def stored_meta(raw_meta: bytes | str, raw_input: bytes | str | None) -> ExecutionMeta:
    """An execution's meta as stored: its ``meta`` JSON, with the input kept apart (the
    ``input`` field; None: an execution from before, whose meta JSON holds it)."""
    meta = ExecutionMeta.model_validate_json(raw_meta)
    return meta if raw_input is None else evolve(meta, {"input": from_json(raw_input)})


def loaded_execution(
    event_ids: Sequence[str],
    meta_and_revision: Sequence[bytes | str | None],
    raw_nodes: Mapping[bytes | str, bytes | str],
    recorded: Sequence[bytes | str | None],
    loop_fields: Sequence[bytes | str | None] = (),
    fetched: Sequence[str] | None = None,
) -> Loaded:
    """An execution's view and applied records from the replies that read them: the
    meta hash's ``meta``, ``revision`` and ``input`` (decoded when first read), the
    nodes hash (only the ``fetched`` nodes' when not None: :func:`fetched_nodes`), the
    applied records of ``event_ids`` (in
    order, None where not applied), and the loop data prefetched (field / JSON pairs,
    flat; None where never written)."""
    raw_meta, raw_revision, raw_input = meta_and_revision
    if raw_meta is None or raw_revision is None:
        return None, {}
    applied = {
        event_id: Applied(decode_commands(raw))
        for event_id, raw in zip(event_ids, recorded, strict=True)
        if raw is not None
    }
    meta = ExecutionMeta.model_validate_json(raw_meta)
    loops = LazyValues(dict(zip(loop_fields[::2], loop_fields[1::2], strict=True)))
    nodes = LazyNodes(raw_nodes)
    revision = int(raw_revision)
    view = ExecutionView(meta, nodes, revision, loops, False, fetched=fetched, input_json=raw_input)
    view.held_bytes = (
        len(raw_meta) + len(raw_input or b"") + sum(len(raw) for raw in raw_nodes.values())
    )
    return view, applied


def fetched_nodes(
    node_ids: Sequence[str], values: Sequence[bytes | str | None]
) -> dict[bytes | str, bytes | str]:
    """An HMGET of node states (values in the order of ``node_ids``) as a nodes hash:
    the nodes never written are left out."""
    return {n: v for n, v in zip(node_ids, values, strict=True) if v is not None}


def decode_nodes(raw: Mapping[bytes | str, bytes | str]) -> dict[str, NodeState]:
    """A nodes hash, every node decoded."""
    return {text(node_id): NodeState.model_validate_json(data) for node_id, data in raw.items()}


class LazyNodes(Mapping[str, NodeState]):
    """Node states as read (JSON per node), each decoded the first time it is looked at.

    A transition looks at the nodes its event touches, not at every node of the
    execution: decoding all of them made a step's cost grow with the workflow's size.
    """

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Mapping[bytes | str, bytes | str]) -> None:
        self._raw = {text(node_id): data for node_id, data in raw.items()}
        self._decoded: dict[str, NodeState] = {}

    def __getitem__(self, node_id: str) -> NodeState:
        state = self._decoded.get(node_id)
        if state is None:
            state = NodeState.model_validate_json(self._raw[node_id])
            self._decoded[node_id] = state
        return state

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._raw


class LazyValues(Mapping[str, Any]):
    """Loop data fields as read (JSON, or None where never written: :data:`ABSENT`),
    each decoded the first time it is looked at."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: Mapping[Any, bytes | str | None]) -> None:
        self._raw = {text(name): data for name, data in raw.items()}
        self._decoded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name in self._decoded:
            return self._decoded[name]
        data = self._raw[name]
        value = ABSENT if data is None else from_json(data)
        self._decoded[name] = value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, name: object) -> bool:
        return name in self._raw


def task_claim(reply: Sequence[bytes | str]) -> TaskClaim:
    """A CLAIM_TASK reply as a :class:`~spane.state.base.TaskClaim`."""
    outcome = ClaimOutcome(text(reply[0]))
    if outcome is ClaimOutcome.FINISHED:
        return TaskClaim(outcome, TaskResult.model_validate_json(reply[1]))
    return TaskClaim(outcome)


def claim_info(
    worker: bytes | str | None, expires_at: bytes | str | None, result: bytes | str | None
) -> ClaimInfo | None:
    """A claim hash's ``worker``, ``expires_at`` and ``result`` fields as a
    :class:`~spane.schemas.claims.ClaimInfo` (None if no worker claimed the task and no
    result is stored)."""
    if worker is None and result is None:
        return None
    return ClaimInfo(
        worker_id=text(worker) if worker is not None else "",
        expires_at=float(text(expires_at)) if expires_at is not None else 0.0,
        result=TaskResult.model_validate_json(result) if result is not None else None,
    )

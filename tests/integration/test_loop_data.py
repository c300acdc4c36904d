"""Loop data (a for_each's items and results, one field each) in every StateStore: written
by create and commit, prefetched by ``load_many`` for a batch's loop events, the rest read
on demand (``MissingLoopDataError`` -> ``load_loop_values``)."""

from __future__ import annotations

import pytest

from spane.schemas.state import LoopState, NodeStatus
from spane.schemas.view import ABSENT, MissingLoopDataError, loop_field
from spane.state.base import StateStore
from spane.state.redis import RedisStateStore
from tests.integration.test_state_contract import (  # noqa: F401 (fixtures)
    clock,
    commit,
    loaded,
    new_view,
    redis_store,
    redis_url_of_kind,
    store,
)


def _item(index: int) -> str:
    return loop_field("each", 1, "i", index)


def _result(index: int) -> str:
    return loop_field("each", 1, "r", index)


async def _loop_of_three(target: StateStore) -> None:
    """An execution whose for_each ``each`` (attempt 1) over 3 items started 0 and 1."""
    view = new_view(nodes=("each",))
    loop = LoopState(total=3, next=2, running=(0, 1))
    view.update_node("each", status=NodeStatus.WAITING, attempt=1, loop=loop)
    view.set_loop_values({_item(i): {"i": i} for i in range(3)})
    assert await target.create(view, "start", [])


async def test_loop_values_round_trip(store: StateStore):  # noqa: F811
    await _loop_of_three(store)
    view = await loaded(store)
    view.set_loop_values({_result(0): [1.5, "x"], _result(1): None})
    assert await commit(store, view, "r0", [])
    values = await store.load_loop_values("ex-1", [_result(0), _result(1), _result(2), _item(2)])
    assert values == {
        _result(0): [1.5, "x"],
        _result(1): None,
        _result(2): ABSENT,
        _item(2): {"i": 2},
    }


async def test_load_many_prefetches_what_the_batch_reads(store: StateStore):  # noqa: F811
    await _loop_of_three(store)
    (view, _) = (await store.load_many({"ex-1": ()}, {"ex-1": {"each": 1}}))["ex-1"]
    assert view is not None
    assert view.loop_values([_item(2)]) == [{"i": 2}]  # the next iteration's item

    loop = LoopState(total=3, next=3, running=(2,), done=2)
    view.update_node("each", loop=loop)
    view.set_loop_values({_result(0): "a", _result(1): "b"})
    assert await commit(store, view, "r01", [])
    (view, _) = (await store.load_many({"ex-1": ()}, {"ex-1": {"each": 1}}))["ex-1"]
    assert view is not None  # the last iteration may complete the loop: every result
    assert view.loop_values([_result(i) for i in range(3)]) == ["a", "b", ABSENT]


@pytest.mark.real
async def test_redis_reads_unloaded_loop_data_on_demand(
    redis_store: RedisStateStore,  # noqa: F811
):
    await _loop_of_three(redis_store)
    view = await loaded(redis_store)  # no hint: nothing prefetched
    with pytest.raises(MissingLoopDataError) as missing:
        view.loop_values([_item(2)])
    assert missing.value.fields == (_item(2),)
    view.add_loaded_loop_values(await redis_store.load_loop_values("ex-1", missing.value.fields))
    assert view.loop_values([_item(2)]) == [{"i": 2}]
    keys = redis_store.keys.execution("ex-1")
    assert await redis_store.client.hlen(keys.loops) == 3

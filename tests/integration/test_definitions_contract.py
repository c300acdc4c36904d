"""The DefinitionStore contract, written once and run on every backend.

``memory`` is the reference (:class:`MemoryDefinitionStore`); ``mongo`` runs the same
tests against a MongoDB-wire server (``mongodb_url`` fixture), one database per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from spane.compiler.compile import checksum
from spane.errors import NotFoundError, WorkflowNotFoundError
from spane.schemas.workflow import WorkflowSpec
from spane.state.base import DefinitionStore, WorkflowRecord
from spane.state.memory import MemoryDefinitionStore

NOW = 1_700_000_000.0

RICH: dict[str, Any] = {
    "id": "orders.rich",
    "name": "Rich ✓ — every corner of the language",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.test/order",
        "$ref": "#/$defs/order",
        "$defs": {"order": {"type": "object", "properties": {"a.b": {"type": "integer"}}}},
    },
    "timeout": "5m",
    "max_concurrency": 8,
    "defaults": {
        "timeout": "30s",
        "retry": {"max_attempts": 3, "backoff": 1.5, "non_retryable": ["ValueError"]},
    },
    "vars": {"dotted.key": 1, "$dollar": 2, "big": 2**70, "ratio": 0.1, "list": [{"x": None}]},
    "triggers": [
        {"cron": "0 * * * *", "timezone": "Europe/Paris"},
        {"event": "orders.#", "filter": "event.total > 10", "input": {"from": "event"}},
        {"webhook": {"path": "orders/in", "secret_env": "HOOK_SECRET"}},
    ],
    "nodes": [
        {
            "id": "fetch",
            "type": "http",
            "request": {
                "method": "POST",
                "url": "https://example.test/orders",
                "headers": {"X-Trace": "${ execution.id }"},
                "json": {"$ref": "#/a", "$id": "b", "items": [1, 2.5, "three"]},
            },
            "expect": {"status": [200, 201]},
            "retry": {"max_attempts": 2, "initial_interval": "500ms"},
            "priority": 5,
        },
        {
            "id": "approve",
            "type": "wait_for_signal",
            "after": "fetch",
            "signal": "approved",
            "schema": {"type": "object", "required": ["by"], "$id": "urn:approval"},
            "timeout": "1h",
        },
        {
            "id": "route",
            "type": "switch",
            "after": ["approve"],
            "cases": [{"name": "big", "when": "input.total > 100"}],
        },
        {
            "id": "each",
            "type": "for_each",
            "after": ["route.big"],
            "items": "${ input.items }",
            "concurrency": 4,
            "body": {
                "nodes": [
                    {"id": "step", "function": "demo.step", "input": {"item": "${ item }"}},
                    {
                        "id": "inner",
                        "type": "while",
                        "after": ["step"],
                        "condition": "vars.n < 3",
                        "max_iterations": 50,
                        "body": {
                            "nodes": [
                                {"id": "deep", "type": "image-resize", "config": {"w": 10}},
                                {"id": "stop", "type": "break", "after": ["deep"], "when": "true"},
                            ]
                        },
                    },
                ],
                "output": "${ inner }",
            },
        },
        {
            "id": "child",
            "type": "sub_workflow",
            "after": ["route.default"],
            "workflow": "orders.child",
            "version": 2,
            "wait": False,
        },
        {
            "id": "done",
            "type": "transform",
            "after": ["each", "child"],
            "join": {"at_least": 1},
            "aggregate": "merge",
            "output": {"ok": True},
        },
        {"id": "late", "type": "delay", "after": ["done"], "duration": "250ms"},
        {"id": "tag", "type": "set", "after": ["late"], "vars": {"done": True}},
        {
            "id": "oops",
            "type": "fail",
            "after": ["fetch.error"],
            "error": {"type": "Boom", "message": "no"},
        },
    ],
    "output": "${ done }",
}


def make_spec(workflow_id: str = "orders", function: str = "shop.charge") -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {"id": workflow_id, "nodes": [{"id": "charge", "function": function}]}
    )


def dump(spec: WorkflowSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", by_alias=True)


async def register(store: DefinitionStore, spec: WorkflowSpec, now: float = NOW) -> WorkflowRecord:
    return await store.register(spec, checksum(spec), now)


# ----------------------------------------------------------------------------- backends


@contextlib.asynccontextmanager
async def mongo_store(url: str, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    from pymongo import AsyncMongoClient

    from spane.state.mongo import MongoDefinitionStore

    database = f"spane_test_{uuid.uuid4().hex[:8]}"
    store = MongoDefinitionStore(url, database=database, app_name=request.node.name[:100])
    try:
        await store.connect()
        yield store
    finally:
        await store.close()
        cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url)
        try:
            await cleaner.drop_database(database)
        finally:
            await cleaner.close()


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.real)])
def backend(request: pytest.FixtureRequest) -> str | None:
    """``None`` for the memory store, else the MongoDB URL (skips/fails if unreachable)."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("mongodb_url")
    return url


@pytest.fixture
async def store(
    backend: str | None, request: pytest.FixtureRequest
) -> AsyncIterator[DefinitionStore]:
    if backend is None:
        yield MemoryDefinitionStore()
        return
    async with mongo_store(backend, request) as mongo:
        yield mongo


@pytest.fixture
async def mongo(mongodb_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    async with mongo_store(mongodb_url, request) as store:
        yield store


# ----------------------------------------------------------------------------- register


async def test_register_new_workflow_is_version_1(store: DefinitionStore) -> None:
    spec = make_spec()
    record = await register(store, spec)
    assert record == WorkflowRecord(
        workflow_id="orders", version=1, checksum=checksum(spec), spec=spec, created_at=NOW
    )


async def test_same_content_returns_the_same_version(store: DefinitionStore) -> None:
    first = await register(store, make_spec(), now=NOW)
    again = await register(store, make_spec(), now=NOW + 60)
    assert again.version == first.version == 1
    assert again.created_at == NOW  # the existing version, not a new one
    assert (await store.get("orders")).version == 1


async def test_changed_content_creates_the_next_version(store: DefinitionStore) -> None:
    v1 = await register(store, make_spec(function="shop.charge"))
    v2 = await register(store, make_spec(function="shop.charge_v2"), now=NOW + 1)
    assert (v1.version, v2.version) == (1, 2)
    assert v2.checksum != v1.checksum
    assert v2.created_at == NOW + 1
    # going back to older content is a change relative to the latest version
    v3 = await register(store, make_spec(function="shop.charge"), now=NOW + 2)
    assert v3.version == 3
    assert v3.checksum == v1.checksum


async def test_versions_are_per_workflow(store: DefinitionStore) -> None:
    await register(store, make_spec("a", "x.one"))
    await register(store, make_spec("a", "x.two"))
    assert (await register(store, make_spec("b", "x.one"))).version == 1


# ----------------------------------------------------------------------------- get


async def test_get_latest_and_pinned_versions(store: DefinitionStore) -> None:
    first, second = make_spec(function="shop.one"), make_spec(function="shop.two")
    await register(store, first)
    await register(store, second, now=NOW + 5)

    latest = await store.get("orders")
    assert (latest.version, latest.spec, latest.created_at) == (2, second, NOW + 5)
    pinned = await store.get("orders", 1)
    assert (pinned.version, pinned.spec, pinned.checksum) == (1, first, checksum(first))
    assert await store.get("orders", 2) == latest


async def test_get_unknown_workflow_raises(store: DefinitionStore) -> None:
    await register(store, make_spec("known"))
    with pytest.raises(WorkflowNotFoundError, match=r"'missing' is not registered"):
        await store.get("missing")
    with pytest.raises(WorkflowNotFoundError, match=r"'missing'"):
        await store.get("missing", 1)


@pytest.mark.parametrize("version", [0, 3, 99])
async def test_get_unknown_version_names_the_latest(store: DefinitionStore, version: int) -> None:
    await register(store, make_spec(function="shop.one"))
    await register(store, make_spec(function="shop.two"))
    with pytest.raises(WorkflowNotFoundError) as caught:
        await store.get("orders", version)
    message = str(caught.value)
    assert "'orders'" in message
    assert f"no version {version}" in message
    assert "latest: 2" in message
    assert isinstance(caught.value, NotFoundError)
    assert isinstance(caught.value, LookupError)


# ----------------------------------------------------------------------------- list


async def test_list_workflows_is_empty_at_first(store: DefinitionStore) -> None:
    assert await store.list_workflows() == []


async def test_list_workflows_returns_the_latest_of_each(store: DefinitionStore) -> None:
    await register(store, make_spec("zeta", "f.one"))
    await register(store, make_spec("alpha", "f.one"))
    await register(store, make_spec("alpha", "f.two"))
    await register(store, make_spec("alpha", "f.three"))
    await register(store, make_spec("mid", "f.one"))
    await register(store, make_spec("zeta", "f.two"))

    records = await store.list_workflows()
    # the memory store keeps registration order; MongoDB sorts by id (see the report)
    latest = sorted(
        (r.workflow_id, r.version, dump(r.spec)["nodes"][0]["function"]) for r in records
    )
    assert latest == [("alpha", 3, "f.three"), ("mid", 1, "f.one"), ("zeta", 2, "f.two")]


# ----------------------------------------------------------------------------- round trip


async def test_the_spec_round_trips_exactly(store: DefinitionStore) -> None:
    spec = WorkflowSpec.model_validate(RICH)
    registered = await register(store, spec)

    stored = await store.get(spec.id)
    assert dump(stored.spec) == dump(spec)
    assert stored.spec == spec
    assert checksum(stored.spec) == stored.checksum == registered.checksum
    assert dump(stored.spec)["nodes"][0]["request"]["json"]["$ref"] == "#/a"
    assert dump(stored.spec)["nodes"][1]["schema"]["$id"] == "urn:approval"
    assert dump(stored.spec)["vars"]["big"] == 2**70

    (listed,) = await store.list_workflows()
    assert dump(listed.spec) == dump(spec)
    # registering the decoded spec again is recognised as the same content
    assert (await register(store, stored.spec, now=NOW + 1)).version == 1


# ----------------------------------------------------------------------------- concurrency


async def test_concurrent_registrations_of_the_same_content_make_one_version(
    store: DefinitionStore,
) -> None:
    records = await asyncio.gather(*(register(store, make_spec()) for _ in range(5)))
    assert {r.version for r in records} == {1}
    assert (await store.get("orders")).version == 1
    with pytest.raises(WorkflowNotFoundError):
        await store.get("orders", 2)


async def test_concurrent_registrations_of_different_content_make_consecutive_versions(
    store: DefinitionStore,
) -> None:
    specs = [make_spec(function=f"shop.step{i}") for i in range(3)]
    records = await asyncio.gather(*(register(store, spec) for spec in specs))

    assert sorted(r.version for r in records) == [1, 2, 3]
    for spec, record in zip(specs, records, strict=True):
        assert record.spec == spec
        assert (await store.get("orders", record.version)).checksum == checksum(spec)
    assert (await store.get("orders")).version == 3


# ----------------------------------------------------------------------------- archive


def archived(execution_id: str = "exec-1", status: str = "succeeded") -> dict[str, Any]:
    return {
        "id": execution_id,
        "workflow_id": "orders",
        "version": 2,
        "status": status,
        "created_at": NOW,
        "finished_at": NOW + 3.5,
        "input": {"$ref": "#/x", "$id": "y", "a.b": [1, None, 2**70], "ü": "ß"},
        "output": {"total": 12.5},
        "nodes": {"charge": {"status": "succeeded", "attempt": 1, "output": {"$db": "z"}}},
    }


async def test_archive_upserts_and_reads_back(store: DefinitionStore) -> None:
    assert await store.get_archived("exec-1") is None

    await store.archive(archived(status="failed"))
    assert await store.get_archived("exec-1") == archived(status="failed")

    await store.archive(archived(status="succeeded"))  # archived twice: the last one wins
    assert await store.get_archived("exec-1") == archived(status="succeeded")

    await store.archive(archived("exec-2"))
    assert await store.get_archived("exec-2") == archived("exec-2")
    assert await store.get_archived("exec-3") is None


async def test_archive_many_writes_every_record_and_the_last_of_an_id_wins(
    store: DefinitionStore,
) -> None:
    await store.archive(archived("exec-1", status="running"))
    await store.archive_many(
        [archived("exec-1", "failed"), archived("exec-2"), archived("exec-1", "succeeded")]
    )
    await store.archive_many([])  # nothing to write is not an error

    assert await store.get_archived("exec-1") == archived("exec-1", "succeeded")
    assert await store.get_archived("exec-2") == archived("exec-2")


# ----------------------------------------------------------------------------- mongo only


@pytest.mark.real
async def test_dead_letters_newest_first(mongo: Any) -> None:
    assert await mongo.list_dead_letters() == []
    entries = [
        {"reason": f"bad json {i}", "queue": "spane.inbox", "body": b"\x00{", "at": NOW + i}
        for i in range(3)
    ]
    for entry in entries:
        await mongo.record_dead_letter(entry)
    assert all("_id" not in entry for entry in entries)  # the caller's dict is untouched

    assert await mongo.list_dead_letters() == entries[::-1]
    assert await mongo.list_dead_letters(limit=2) == entries[:0:-1]
    assert await mongo.list_dead_letters(limit=0) == []


@pytest.mark.real
async def test_connect_creates_the_indexes_idempotently(mongo: Any, mongodb_url: str) -> None:
    from pymongo import AsyncMongoClient

    await mongo.connect()  # a second time: no error
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    try:
        db = client[mongo.database]
        workflows = await db["workflows"].index_information()
        executions = await db["executions"].index_information()
    finally:
        await client.close()
    assert workflows["workflow_id_version"]["unique"] is True
    assert [tuple(k) for k in workflows["workflow_id_version"]["key"]] == [
        ("workflow_id", 1),
        ("version", 1),
    ]
    assert [tuple(k) for k in executions["workflow_created"]["key"]] == [
        ("workflow_id", 1),
        ("created_at", 1),
    ]


@pytest.mark.real
async def test_list_workflows_is_sorted_by_id(mongo: Any) -> None:
    for workflow_id in ["zeta", "alpha", "mid"]:
        await register(mongo, make_spec(workflow_id))
    assert [r.workflow_id for r in await mongo.list_workflows()] == ["alpha", "mid", "zeta"]


@pytest.mark.parametrize(
    ("url", "database", "expected"),
    [
        ("mongodb://127.0.0.1:27018", None, "spane"),
        ("mongodb://127.0.0.1:27018/", None, "spane"),
        ("mongodb://127.0.0.1:27018/prod_defs?appName=x", None, "prod_defs"),
        ("mongodb://127.0.0.1:27018/prod_defs", "explicit", "explicit"),
    ],
)
async def test_database_name_comes_from_the_argument_then_the_url(
    url: str, database: str | None, expected: str
) -> None:
    pytest.importorskip("pymongo")
    from spane.state.mongo import MongoDefinitionStore

    store = MongoDefinitionStore(url, database=database)  # no I/O until first use
    try:
        assert store.database == expected
    finally:
        await store.close()

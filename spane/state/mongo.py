"""MongoDB adapter of :class:`~spane.state.base.DefinitionStore` (PyMongo's async API).

Collections (in one database: the ``database`` argument, else the URL's path, else
``spane``)::

    workflows     {workflow_id, version, checksum, spec, created_at}
                  unique index (workflow_id, version): one document per version
    executions    {_id: execution id, workflow_id, version, status, created_at,
                   finished_at, record}        index (workflow_id, created_at)
    dead_letters  the entries as given, ``_id`` = their ``id`` when they have one
                  index (dead_at, _id): newest first, and the pages after a position

``spec`` and ``record`` hold JSON text, not BSON sub-documents. Workflow specs and
execution records carry user data (JSON Schemas, variables, node outputs), and BSON
cannot take all of it back unchanged: PyMongo decodes any object holding ``$ref`` and
``$id`` keys (a common JSON Schema shape) into a ``DBRef``, mongod refuses ``$ref`` /
``$id`` fields that do not form a DBRef in replacement documents, and integers beyond
64 bits do not encode. Text round-trips exactly; the fields used to find documents stay
top-level and indexed.

Registration is optimistic: read the latest version, insert version + 1, and let the
unique index arbitrate between concurrent registrations (the loser re-reads and retries).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

try:
    from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, ReplaceOne
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.errors import DuplicateKeyError
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "MongoDefinitionStore needs PyMongo >= 4.13: pip install 'spane[distributed]'"
    ) from exc

from spane.errors import StateConflictError, WorkflowNotFoundError
from spane.schemas.workflow import WorkflowSpec
from spane.state.base import WorkflowRecord

__all__ = ["DEFAULT_DATABASE", "MongoDefinitionStore"]

Document = dict[str, Any]

DEFAULT_DATABASE: Final = "spane"
WORKFLOWS: Final = "workflows"
EXECUTIONS: Final = "executions"
DEAD_LETTERS: Final = "dead_letters"

MAX_REGISTER_ATTEMPTS: Final = 32
"""Optimistic rounds of one registration; each lost round means another one won."""

_WORKFLOW_INDEXES: Final = [
    IndexModel(
        [("workflow_id", ASCENDING), ("version", ASCENDING)],
        name="workflow_id_version",
        unique=True,
    )
]
_EXECUTION_INDEXES: Final = [
    IndexModel([("workflow_id", ASCENDING), ("created_at", ASCENDING)], name="workflow_created")
]
_DEAD_LETTER_INDEXES: Final = [
    IndexModel([("dead_at", DESCENDING), ("_id", DESCENDING)], name="dead_at_id")
]
_HEAD: Final = {"_id": False, "version": True, "checksum": True, "created_at": True}
"""Projection of a workflow document without its spec."""
_ARCHIVE_FIELDS: Final = ("workflow_id", "version", "status", "created_at", "finished_at")
"""Fields of an archived execution copied next to its JSON text, for queries."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _record(document: Document) -> WorkflowRecord:
    return WorkflowRecord(
        workflow_id=document["workflow_id"],
        version=document["version"],
        checksum=document["checksum"],
        spec=WorkflowSpec.model_validate(json.loads(document["spec"])),
        created_at=document["created_at"],
    )


class MongoDefinitionStore:
    """:class:`~spane.state.base.DefinitionStore` in MongoDB.

    ``url`` is a MongoDB connection string; ``database`` defaults to the string's path
    (``mongodb://host/spane_prod``), else ``spane``. ``app_name`` names the connections
    in the server's logs and ``currentOp``. Call :meth:`connect` once to create the
    indexes (every method also does it on first use), :meth:`close` at the end.
    """

    def __init__(self, url: str, *, database: str | None = None, app_name: str = "spane") -> None:
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(url, appname=app_name)
        db = (
            self._client[database]
            if database is not None
            else self._client.get_default_database(DEFAULT_DATABASE)
        )
        self.database: str = db.name
        self._workflows: AsyncCollection[Document] = db[WORKFLOWS]
        self._executions: AsyncCollection[Document] = db[EXECUTIONS]
        self._dead_letters: AsyncCollection[Document] = db[DEAD_LETTERS]
        self._indexed = False

    async def connect(self) -> None:
        """Create the indexes if missing (idempotent); raises if the server is unreachable."""
        await self._workflows.create_indexes(_WORKFLOW_INDEXES)
        await self._executions.create_indexes(_EXECUTION_INDEXES)
        await self._dead_letters.create_indexes(_DEAD_LETTER_INDEXES)
        self._indexed = True

    async def close(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------ workflows
    async def register(self, spec: WorkflowSpec, checksum: str, now: float) -> WorkflowRecord:
        """Same content as the latest version -> that version; else version + 1.

        Concurrent registrations serialise on the unique (workflow_id, version) index:
        the same content ends as one version, different contents as consecutive ones.
        Raises :class:`~spane.errors.StateConflictError` if
        :data:`MAX_REGISTER_ATTEMPTS` rounds were all lost to other registrations.
        """
        await self._ready()
        text = _dumps(spec.model_dump(mode="json", by_alias=True))
        for _ in range(MAX_REGISTER_ATTEMPTS):
            latest = await self._latest(spec.id, _HEAD)
            if latest is not None and latest["checksum"] == checksum:
                return WorkflowRecord(
                    workflow_id=spec.id,
                    version=latest["version"],
                    checksum=checksum,
                    spec=spec,  # same checksum, same content: no need to decode the stored one
                    created_at=latest["created_at"],
                )
            version = 1 if latest is None else int(latest["version"]) + 1
            document: Document = {
                "workflow_id": spec.id,
                "version": version,
                "checksum": checksum,
                "spec": text,
                "created_at": now,
            }
            try:
                await self._workflows.insert_one(document)
            except DuplicateKeyError:
                continue  # another registration took this version: look again
            return WorkflowRecord(
                workflow_id=spec.id, version=version, checksum=checksum, spec=spec, created_at=now
            )
        raise StateConflictError(
            f"could not register workflow {spec.id!r}: {MAX_REGISTER_ATTEMPTS} concurrent "
            "registrations of it won first; try again"
        )

    async def get(self, workflow_id: str, version: int | None = None) -> WorkflowRecord:
        """The given version, or the latest; raises :class:`WorkflowNotFoundError`."""
        await self._ready()
        if version is None:
            document = await self._latest(workflow_id)
        else:
            document = await self._workflows.find_one(
                {"workflow_id": workflow_id, "version": version}
            )
        if document is not None:
            return _record(document)
        latest = await self._latest(workflow_id, _HEAD)
        if latest is None:
            raise WorkflowNotFoundError(f"workflow {workflow_id!r} is not registered")
        raise WorkflowNotFoundError(
            f"workflow {workflow_id!r} has no version {version} (latest: {latest['version']})"
        )

    async def list_workflows(self) -> list[WorkflowRecord]:
        """The latest version of every workflow, sorted by workflow id."""
        await self._ready()
        pipeline: list[Document] = [
            # walks the unique index backwards, so $first is each workflow's latest version
            {"$sort": {"workflow_id": DESCENDING, "version": DESCENDING}},
            {"$group": {"_id": "$workflow_id", "latest": {"$first": "$$ROOT"}}},
            {"$sort": {"_id": ASCENDING}},
        ]
        cursor = await self._workflows.aggregate(pipeline)
        return [_record(row["latest"]) async for row in cursor]

    async def _latest(
        self, workflow_id: str, projection: dict[str, bool] | None = None
    ) -> Document | None:
        return await self._workflows.find_one(
            {"workflow_id": workflow_id},
            projection=projection,
            sort=[("version", DESCENDING)],
        )

    # ------------------------------------------------------------------ archive
    async def archive(self, execution: dict[str, Any]) -> None:
        """Store (or replace) a finished execution's record under its ``id``.

        ``execution`` must be JSON-serialisable (``model_dump(mode="json")`` output).
        """
        await self.archive_many([execution])

    async def archive_many(self, executions: Sequence[dict[str, Any]]) -> None:
        """One unordered bulk write of upserts (the last record of an id wins)."""
        if not executions:
            return
        await self._ready()
        latest = {str(execution["id"]): execution for execution in executions}
        requests = [
            ReplaceOne(
                {"_id": execution_id}, _archive_document(execution_id, execution), upsert=True
            )
            for execution_id, execution in latest.items()
        ]
        await self._executions.bulk_write(requests, ordered=False)

    async def get_archived(self, execution_id: str) -> dict[str, Any] | None:
        await self._ready()
        document = await self._executions.find_one(
            {"_id": execution_id}, projection={"record": True}
        )
        if document is None:
            return None
        record: dict[str, Any] = json.loads(document["record"])
        return record

    # ------------------------------------------------------------------ dead letters
    async def record_dead_letter(self, entry: dict[str, Any]) -> None:
        """Keep a message that could not be processed (reason, body, headers, ...).

        The entry is stored as a document (BSON types such as ``bytes`` are fine).
        """
        await self._ready()
        document = dict(entry)  # a copy: PyMongo adds ``_id``
        if "id" not in entry:
            await self._dead_letters.insert_one(document)
            return
        document["_id"] = str(entry["id"])
        await self._dead_letters.replace_one({"_id": document["_id"]}, document, upsert=True)

    async def list_dead_letters(
        self, limit: int = 100, *, before: tuple[float, str] | None = None
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` entries, newest first by ``(dead_at, _id)``; entries without
        ``dead_at`` and ``id`` (older records) by insertion (their ObjectId)."""
        await self._ready()
        if limit <= 0:
            return []  # PyMongo reads limit=0 as "no limit"
        query: Document = {}
        if before is not None:
            at, entry_id = before
            query = {"$or": [{"dead_at": {"$lt": at}}, {"dead_at": at, "_id": {"$lt": entry_id}}]}
        cursor = self._dead_letters.find(
            query,
            projection={"_id": False},
            sort=[("dead_at", DESCENDING), ("_id", DESCENDING)],
            limit=limit,
        )
        return await cursor.to_list()

    async def get_dead_letter(self, entry_id: str) -> dict[str, Any] | None:
        await self._ready()
        return await self._dead_letters.find_one({"_id": entry_id}, projection={"_id": False})

    async def delete_dead_letter(self, entry_id: str) -> bool:
        await self._ready()
        result = await self._dead_letters.delete_one({"_id": entry_id})
        return result.deleted_count > 0

    async def _ready(self) -> None:
        if not self._indexed:
            await self.connect()  # idempotent, so concurrent first calls are harmless


def _archive_document(execution_id: str, execution: dict[str, Any]) -> Document:
    """The stored form: the queryable fields, and the whole record as JSON text."""
    document: Document = {"_id": execution_id}
    document.update((key, execution.get(key)) for key in _ARCHIVE_FIELDS)
    document["record"] = _dumps(execution)
    return document

"""What the engine needs to know about each synced entity, and the two sides' adapters.

An :class:`EntitySpec` names the canonical fields (sync/canonical.py), which of them only one side
writes, and which refer to other synced entities. The local adapter reads and writes Casebridge
records through the domain services (so every rule, event and ETag applies); the remote adapter
(connectors/<vendor>/) reads and writes the vendor's records through its API client.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from casebridge.models import SyncLink
from casebridge.models.sync import UNLINKED
from casebridge.sync.errors import NeedsDependency


@dataclass(frozen=True)
class LocalState:
    values: dict[str, Any]
    version: int
    updated_at: datetime
    archived: bool


@dataclass(frozen=True)
class RemoteRecord:
    remote_id: int
    etag: str
    updated_at: datetime
    created_at: datetime | None
    values: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)  # vendor ids of nested items, by list

    def snapshot(self) -> dict[str, Any]:
        return {"values": self.values, "raw": self.raw}


class StaleLocal(Exception):
    """The local record changed between our read and our write: read again."""


class Refs:
    """Translates references between sides through the links (a matter's client contact)."""

    def __init__(self, session: Session, connection_id: uuid.UUID, *, strict: bool = True) -> None:
        self.session = session
        self.connection_id = connection_id
        self.strict = strict  # False: an unsynced reference reads as None and is noted in ``missing``
        self.missing: list[NeedsDependency] = []

    def remote_id(self, entity: str, local_id: uuid.UUID) -> int | None:
        rid = self.session.scalar(
            select(SyncLink.remote_id).where(
                SyncLink.connection_id == self.connection_id,
                SyncLink.entity == entity,
                SyncLink.local_id == local_id,
                SyncLink.state != UNLINKED,
            )
        )
        if rid is None:
            if not self.strict:
                self.missing.append(NeedsDependency(entity, local_id=local_id))
                return None
            raise NeedsDependency(entity, local_id=local_id)
        return int(rid)

    def local_id(self, entity: str, remote_id: int) -> uuid.UUID:
        lid = self.session.scalar(
            select(SyncLink.local_id).where(
                SyncLink.connection_id == self.connection_id,
                SyncLink.entity == entity,
                SyncLink.remote_id == remote_id,
                SyncLink.state != UNLINKED,
            )
        )
        if lid is None:
            raise NeedsDependency(entity, remote_id=remote_id)
        return lid


class LocalAdapter(Protocol):
    def read(self, session: Session, local_id: uuid.UUID, refs: Refs) -> LocalState | None: ...

    def create(self, session: Session, values: dict[str, Any], refs: Refs) -> uuid.UUID: ...

    def update(
        self, session: Session, local_id: uuid.UUID, version: int, changes: dict[str, Any], refs: Refs
    ) -> None: ...

    def archive(self, session: Session, local_id: uuid.UUID) -> None: ...

    def restore(self, session: Session, local_id: uuid.UUID) -> None: ...

    def in_use(self, session: Session, local_id: uuid.UUID) -> str | None:
        """Why this record must not be archived by a delete on the other side (None: it may be)."""
        ...

    def label(self, values: dict[str, Any]) -> str: ...

    def candidates(
        self, session: Session, connection_id: uuid.UUID, values: dict[str, Any]
    ) -> list[uuid.UUID]:
        """Live local records with no link in this connection that share ``values``'s match key
        (canonical.match_key): the ones a remote record from before the connection may be."""
        ...


class RemoteAdapter(Protocol):
    model: str  # the vendor's webhook model name

    def parse(self, raw: dict[str, Any]) -> RemoteRecord | None: ...

    def get(self, client: Any, remote_id: int) -> RemoteRecord: ...

    def create(self, client: Any, values: dict[str, Any]) -> RemoteRecord: ...

    def update(self, client: Any, current: RemoteRecord, changes: dict[str, Any]) -> RemoteRecord: ...

    def delete(self, client: Any, remote_id: int) -> None: ...

    def find_created(self, client: Any, values: dict[str, Any], since: datetime) -> list[RemoteRecord]: ...

    def first_page(
        self, client: Any, *, updated_since: datetime | None
    ) -> tuple[list[RemoteRecord], str | None]: ...

    def next_page(self, client: Any, url: str) -> tuple[list[RemoteRecord], str | None]: ...


@dataclass(frozen=True)
class EntitySpec:
    name: str
    fields: tuple[str, ...]
    local: LocalAdapter
    pull_only: tuple[str, ...] = ()  # written by the remote side only (a matter's display_number)
    create_only: tuple[str, ...] = ()  # fixed once created (a contact's kind)
    references: dict[str, str] = field(default_factory=dict)  # field -> the entity it refers to
    # field -> the field it goes with: held for review whenever that one is (a close date and the status)
    coupled: dict[str, str] = field(default_factory=dict)

    @property
    def merged(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if f not in self.create_only)

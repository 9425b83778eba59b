"""All SQL of the sync engine: links, their leases and snapshots, conflicts, the journal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from casebridge.db.session import dialect_insert
from casebridge.db.types import utcnow
from casebridge.jobs import queue
from casebridge.models import SyncConflict, SyncJournal, SyncLink
from casebridge.models.sync import PENDING
from casebridge.sync.entities import RemoteRecord

LEASE = timedelta(seconds=120)
RECONCILE = "sync.reconcile"


def enqueue_reconcile(session: Session, link_id: uuid.UUID, *, trigger: str, delay: float = 0.0) -> None:
    """One reconcile per link waits at a time (later triggers merge into it and bring it forward);
    one runs at a time."""
    key = f"sync:{link_id}"
    queue.enqueue(
        session,
        RECONCILE,
        {"link_id": str(link_id), "trigger": trigger},
        priority=queue.INTERACTIVE,
        run_at=utcnow() + timedelta(seconds=delay) if delay else None,
        unique_key=key,
        concurrency_key=key,
        max_attempts=25,
        expedite=True,
    )


def ensure_link(
    session: Session,
    connection_id: uuid.UUID,
    entity: str,
    *,
    local_id: uuid.UUID | None = None,
    remote_id: int | None = None,
) -> SyncLink:
    """The link of this record, made (``pending``) when there is none. Exactly one of the ids."""
    assert (local_id is None) != (remote_id is None)
    column = SyncLink.local_id if local_id is not None else SyncLink.remote_id
    key = local_id if local_id is not None else remote_id
    found = session.scalar(
        select(SyncLink).where(
            SyncLink.connection_id == connection_id, SyncLink.entity == entity, column == key
        )
    )
    if found is not None:
        return found
    now = utcnow()
    values = {
        "id": uuid.uuid4(),
        "connection_id": connection_id,
        "entity": entity,
        "local_id": local_id,
        "remote_id": remote_id,
        "state": PENDING,
        "remote_stale": False,
        "adopt": False,
        "error_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    index = ["connection_id", "entity", "local_id" if local_id is not None else "remote_id"]
    session.execute(
        dialect_insert(session)(SyncLink).values(**values).on_conflict_do_nothing(index_elements=index)
    )
    link = session.scalar(
        select(SyncLink)
        .where(SyncLink.connection_id == connection_id, SyncLink.entity == entity, column == key)
        .execution_options(populate_existing=True)
    )
    assert link is not None
    return link


def find(
    session: Session,
    connection_id: uuid.UUID,
    entity: str,
    *,
    local_id: uuid.UUID | None = None,
    remote_id: int | None = None,
) -> SyncLink | None:
    column = SyncLink.local_id if local_id is not None else SyncLink.remote_id
    key = local_id if local_id is not None else remote_id
    return session.scalar(
        select(SyncLink).where(
            SyncLink.connection_id == connection_id, SyncLink.entity == entity, column == key
        )
    )


def not_linked(connection_id: uuid.UUID, entity: str, local_id_column: Any) -> Any:
    """A WHERE clause: the local record in ``local_id_column`` has no link in this connection."""
    return ~(
        select(SyncLink.id)
        .where(
            SyncLink.connection_id == connection_id,
            SyncLink.entity == entity,
            SyncLink.local_id == local_id_column,
        )
        .exists()
    )


def lock(session: Session, link_id: uuid.UUID) -> SyncLink | None:
    return session.scalar(
        select(SyncLink)
        .where(SyncLink.id == link_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def claim(session: Session, link_id: uuid.UUID, owner: str) -> bool:
    """Take the link's lease: free, expired, or already ours (a retried job reclaims its own).

    A lease is never taken from a job because it is no longer running: a stopping worker puts its jobs
    back while their threads may still be sending, and a create in flight must be able to finish (or
    be found) before anyone else looks for it."""
    now = utcnow()
    result = session.execute(
        update(SyncLink)
        .where(
            SyncLink.id == link_id,
            or_(SyncLink.lease_owner.is_(None), SyncLink.lease_owner == owner, SyncLink.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=now + LEASE)
    )
    return bool(getattr(result, "rowcount", 0))


def release(session: Session, link_id: uuid.UUID, owner: str) -> None:
    session.execute(
        update(SyncLink)
        .where(SyncLink.id == link_id, SyncLink.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def advance_snapshot(
    link: SyncLink, record: RemoteRecord, *, authoritative: bool = False, read_etag: str | None = None
) -> bool:
    """Move the link's remote snapshot forward to ``record`` if it is newer; True if it changed.

    Snapshots only move forward in ``updated_at``. Two versions stamped in the same second cannot be
    ordered: a record we read or wrote ourselves (``authoritative``) wins, unless the snapshot moved
    since we read it (``read_etag``: a webhook or poll brought something while we worked, which may be
    newer); otherwise the snapshot is marked stale, so the next reconcile reads the record."""
    if link.remote_deleted_at is not None:
        return False
    if authoritative and read_etag is not None and link.remote_etag not in (read_etag, record.etag):
        authoritative = False
    if link.remote_etag == record.etag and link.remote is not None:
        if authoritative and link.remote_stale:
            link.remote_stale = False
        return False
    known = link.remote_updated_at
    if known is not None and record.updated_at < known:
        return False
    if known is not None and record.updated_at == known and not authoritative and link.remote is not None:
        link.remote_stale = True
        return True
    link.remote = record.snapshot()
    link.remote_etag = record.etag
    link.remote_updated_at = record.updated_at
    link.remote_stale = False
    return True


def resync(link: SyncLink) -> None:
    """Start an ended link again. The side still there stays linked; a side that was deleted is
    created anew; with no base, differences are settled by the conflict policy."""
    link.state = PENDING
    link.unlinked_reason = None
    link.base = None
    link.intent = None
    link.error, link.error_count, link.next_retry_at = None, 0, None
    if link.remote_deleted_at is not None or link.remote_id is None:
        link.remote_id = None
        link.remote = link.remote_etag = link.remote_updated_at = link.remote_deleted_at = None
        link.remote_stale = False
        link.adopt = False
    else:
        link.remote_stale = True
        link.adopt = True


def snapshot_record(link: SyncLink) -> RemoteRecord | None:
    if link.remote is None or link.remote_id is None or link.remote_updated_at is None:
        return None
    return RemoteRecord(
        remote_id=link.remote_id,
        etag=link.remote_etag or "",
        updated_at=link.remote_updated_at,
        created_at=None,
        values=dict(link.remote.get("values") or {}),
        raw=dict(link.remote.get("raw") or {}),
    )


@dataclass(frozen=True)
class OpenIntent:
    link_id: uuid.UUID
    values: dict[str, Any]  # what was sent
    idle: bool  # no lease held and no retry scheduled: nothing will look at it unless asked


def open_intents(session: Session, connection_id: uuid.UUID, entity: str) -> list[OpenIntent]:
    """The links with a remote create in flight (recorded, not yet answered), with the values sent.
    However old: a worker may have died after the create and stayed down for hours."""
    now = utcnow()
    rows = session.execute(
        select(SyncLink.id, SyncLink.intent, SyncLink.lease_until, SyncLink.next_retry_at).where(
            SyncLink.connection_id == connection_id,
            SyncLink.entity == entity,
            SyncLink.intent.is_not(None),
            SyncLink.remote_id.is_(None),
        )
    )
    return [
        OpenIntent(
            link_id,
            dict(intent.get("values") or {}),
            idle=(lease_until is None or lease_until < now) and (retry_at is None or retry_at <= now),
        )
        for link_id, intent, lease_until, retry_at in rows
        if intent
    ]


def absorb_placeholder(session: Session, link: SyncLink, remote_id: int) -> None:
    """Before ``link`` takes ``remote_id``: a link a webhook or poll made for the same remote record
    (it arrived before our create was recorded) is ours, not a second record; drop it."""
    other = session.scalar(
        select(SyncLink).where(
            SyncLink.connection_id == link.connection_id,
            SyncLink.entity == link.entity,
            SyncLink.remote_id == remote_id,
            SyncLink.id != link.id,
        )
    )
    if other is None:
        return
    if other.local_id is not None:
        raise ValueError(f"{link.entity} {remote_id} is already linked to {other.local_id}")
    session.delete(other)
    session.flush()


def conflicts_of(session: Session, link_id: uuid.UUID) -> list[SyncConflict]:
    return list(
        session.scalars(
            select(SyncConflict).where(
                SyncConflict.link_id == link_id,
                or_(
                    SyncConflict.state == "open",
                    and_(SyncConflict.state == "resolved", SyncConflict.applied_at.is_(None)),
                ),
            )
        )
    )


def journal(
    session: Session,
    link: SyncLink,
    *,
    trigger: str,
    action: str,
    summary: str,
    detail: dict[str, Any],
) -> None:
    session.add(
        SyncJournal(
            connection_id=link.connection_id,
            link_id=link.id,
            entity=link.entity,
            at=utcnow(),
            trigger=trigger,
            action=action,
            summary=summary,
            detail=detail,
        )
    )


def prune_journal(session: Session, before: datetime) -> int:
    result = session.execute(delete(SyncJournal).where(SyncJournal.at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def count_by_state(session: Session, connection_id: uuid.UUID) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(SyncLink.entity, SyncLink.state, func.count())
        .where(SyncLink.connection_id == connection_id)
        .group_by(SyncLink.entity, SyncLink.state)
    )
    out: dict[str, dict[str, int]] = {}
    for entity, state, n in rows:
        out.setdefault(entity, {})[state] = int(n)
    return out

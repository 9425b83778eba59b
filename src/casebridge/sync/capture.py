"""Learning about remote changes: what a webhook, a poll or a full listing saw is recorded on the link
(the snapshot moves forward) and, when it differs from what both sides last agreed, a reconcile is
enqueued. Also the history backfill, which walks records that are not synced yet.

Nothing here writes to the remote side or to local records: reconciles do.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.models import Connection, Contact, Matter, SyncLink, SyncStream
from casebridge.models.sync import CONNECTED, ERROR, PENDING, UNLINKED
from casebridge.sync import canonical, repository
from casebridge.sync.engine import SyncEnv, reconcile
from casebridge.sync.entities import EntitySpec, Refs, RemoteRecord
from casebridge.sync.errors import LeaseBusy, NeedsPerson, SyncError, Transient
from casebridge.sync.settings import SyncSettings

log = logging.getLogger("casebridge.sync")

RECONCILE = repository.RECONCILE
enqueue_reconcile = repository.enqueue_reconcile


def observe(
    session: Session,
    spec: EntitySpec,
    connection_id: uuid.UUID,
    record: RemoteRecord,
    *,
    trigger: str,
    seen_at: datetime | None = None,
) -> bool:
    """Record a remote record we were shown; True when a reconcile was enqueued.

    A record we have no link for is new to us: it is synced when it was created after the connection
    began. One from before (a poll or full reconcile lists it, or it was edited) is history, as our own
    records from before are: a backfill or a link by hand syncs it, matching it with ours first, so
    history never arrives by itself as duplicates of records both sides already have."""
    link = repository.find(session, connection_id, spec.name, remote_id=record.remote_id)
    new = link is None
    if link is None and _history(session, connection_id, record):
        return False
    if link is None:
        link = repository.ensure_link(session, connection_id, spec.name, remote_id=record.remote_id)
    if seen_at is not None:
        link.remote_seen_at = seen_at
    if link.state == UNLINKED:
        return False
    changed = repository.advance_snapshot(link, record)
    if not (changed or new):
        return False
    base = link.base or {}
    if (
        not new
        and link.local_id is not None
        and not link.remote_stale
        and link.base is not None
        and all(record.values.get(f) == base.get(f) for f in spec.merged)
    ):
        return False  # what both sides already agree on (our own write coming back): nothing to do
    enqueue_reconcile(session, link.id, trigger=trigger)
    return True


def _history(session: Session, connection_id: uuid.UUID, record: RemoteRecord) -> bool:
    """Whether a remote record was created before the connection began (on the remote's clock)."""
    conn = session.get(Connection, connection_id)
    boundary = conn.history_before if conn is not None else None
    return boundary is not None and record.created_at is not None and record.created_at < boundary


def signal_changed(
    session: Session, spec: EntitySpec, connection_id: uuid.UUID, remote_id: int, *, trigger: str
) -> None:
    """A change we cannot read from the message (a delete, or a record without the fields we need):
    the reconcile reads the record itself."""
    link = repository.find(session, connection_id, spec.name, remote_id=remote_id)
    if link is None:
        if trigger.endswith("deleted"):
            return  # never synced: nothing to do
        link = repository.ensure_link(session, connection_id, spec.name, remote_id=remote_id)
    if link.state == UNLINKED:
        return
    link.remote_stale = True
    enqueue_reconcile(session, link.id, trigger=trigger)


# --- polling --------------------------------------------------------------------------------------


def _stream(session: Session, connection_id: uuid.UUID, entity: str) -> SyncStream:
    row = session.get(SyncStream, (connection_id, entity))
    if row is None:
        row = SyncStream(connection_id=connection_id, entity=entity, last_poll_changes=0)
        session.add(row)
        session.flush()
    return row


def poll(env: SyncEnv, connection_id: uuid.UUID) -> dict[str, int]:
    """One poll of every entity: records updated since the cursor (less the lag window). Returns the
    number of reconciles enqueued per entity."""
    with unit_of_work(env.db.reader) as session:
        conn = session.get(Connection, connection_id)
        if conn is None or conn.state != CONNECTED:
            return {}
        settings = SyncSettings.model_validate(conn.settings or {})
        vendor = conn.vendor
        cursors = {
            entity: (session.get(SyncStream, (connection_id, entity)) or SyncStream()).poll_cursor
            for entity in env.specs
        }
    connector = env.connectors[vendor]
    enqueued: dict[str, int] = {}
    for entity, spec in env.specs.items():
        remote = connector.remote(entity)
        client = connector.client(connection_id, bulk=False, calls=[])
        cursor = cursors[entity]
        since = cursor - timedelta(seconds=settings.poll_lag_seconds) if cursor is not None else None
        newest = cursor
        count = 0
        try:
            records, next_url = remote.first_page(client, updated_since=since)
            while True:
                with unit_of_work(env.db.writer) as session:
                    for record in records:
                        count += observe(session, spec, connection_id, record, trigger="poll")
                        newest = max(newest, record.updated_at) if newest else record.updated_at
                if not next_url:
                    break
                records, next_url = remote.next_page(client, next_url)
        except SyncError as exc:
            with unit_of_work(env.db.writer) as session:
                stream = _stream(session, connection_id, entity)
                stream.last_poll_error = f"{type(exc).__name__}: {exc}"[:2000]
            raise
        with unit_of_work(env.db.writer) as session:
            stream = _stream(session, connection_id, entity)
            stream.poll_cursor = newest
            stream.last_poll_at = utcnow()
            stream.last_poll_error = None
            stream.last_poll_changes = count
        enqueued[entity] = count
    return enqueued


# --- full reconcile -------------------------------------------------------------------------------


def full_pass(env: SyncEnv, connection_id: uuid.UUID, entity: str) -> bool:
    """List every remote record (resumable from the stored page), then suspect links not seen of a
    delete (their reconcile reads the record before any delete policy acts). True when finished."""
    spec = env.specs[entity]
    with unit_of_work(env.db.writer) as session:
        conn = session.get(Connection, connection_id)
        if conn is None or conn.state != CONNECTED:
            return True
        vendor = conn.vendor
        stream = _stream(session, connection_id, entity)
        if stream.full_started_at is None:
            stream.full_started_at, stream.full_page = utcnow(), None
        started, page = stream.full_started_at, stream.full_page
    connector = env.connectors[vendor]
    remote = connector.remote(entity)
    client = connector.client(connection_id, bulk=True, calls=[])
    records, next_url = (
        remote.first_page(client, updated_since=None) if page is None else remote.next_page(client, page)
    )
    while True:
        with unit_of_work(env.db.writer) as session:
            now = utcnow()
            for record in records:
                observe(session, spec, connection_id, record, trigger="full", seen_at=now)
            _stream(session, connection_id, entity).full_page = next_url
        if not next_url:
            break
        records, next_url = remote.next_page(client, next_url)
    with unit_of_work(env.db.writer) as session:
        suspects = session.scalars(
            select(SyncLink.id).where(
                SyncLink.connection_id == connection_id,
                SyncLink.entity == entity,
                SyncLink.remote_id.is_not(None),
                SyncLink.state != UNLINKED,
                # Not listed by this pass (a link made during it is read once more: harmless).
                or_(SyncLink.remote_seen_at.is_(None), SyncLink.remote_seen_at < started),
            )
        ).all()
        if suspects:
            session.execute(update(SyncLink).where(SyncLink.id.in_(suspects)).values(remote_stale=True))
        for link_id in suspects:
            enqueue_reconcile(session, link_id, trigger="full:not-listed")
        stream = _stream(session, connection_id, entity)
        stream.last_full_at, stream.full_started_at, stream.full_page = utcnow(), None, None
    return True


def retry_due(env: SyncEnv, connection_id: uuid.UUID) -> int:
    """Enqueue reconciles of links whose last attempt failed and whose retry time has come, and of
    links still pending (a trigger lost with a dead job)."""
    now = utcnow()
    with unit_of_work(env.db.writer) as session:
        due = session.scalars(
            select(SyncLink.id)
            .where(
                SyncLink.connection_id == connection_id,
                or_(
                    and_(SyncLink.next_retry_at.is_not(None), SyncLink.next_retry_at <= now),
                    and_(SyncLink.state == PENDING, SyncLink.updated_at < now - timedelta(minutes=5)),
                ),
                SyncLink.state.in_([PENDING, ERROR, "linked", "conflict"]),
            )
            .limit(500)
        ).all()
        for link_id in due:
            enqueue_reconcile(session, link_id, trigger="retry")
        return len(due)


# --- history --------------------------------------------------------------------------------------

_LOCAL_MODELS: dict[str, Any] = {"contact": Contact, "matter": Matter}
_BATCH = 50


def backfill(
    env: SyncEnv, connection_id: uuid.UUID, entity: str, direction: str, owner: str
) -> dict[str, Any]:
    """Sync records that existed before the connection, resumable from a checkpoint.

    ``push``: Casebridge records with no link, oldest first: linked to the Clio record that is the
    same one (canonical.same_record) or created in Clio. ``pull``: Clio records with no link: linked to
    the same Casebridge record or created here. A linked pair has no merge base, so where the two
    differ the conflict policy decides (``hold``: for review). Every Clio record is listed once per
    run (200 a call) to match against, so matching costs no request per record. Bulk priority: the
    rate budget keeps a permit per window for interactive work, and this job waits in its thread."""
    done: dict[str, Any] = {}
    for name in BACKFILL_ORDER[entity]:  # matters need their clients: contacts go first
        progress = _progress(env, connection_id, name)
        if progress.get("finished_at"):
            done[name] = progress
            continue
        progress.setdefault("started_at", utcnow().isoformat())
        remote, client = _remote_side(env, connection_id, name)
        index = _remote_index(env, connection_id, name, remote, client)
        if direction in ("push", "both") and not progress.get("push_done"):
            _backfill_push(env, connection_id, name, owner, progress, index)
        if direction in ("pull", "both") and not progress.get("pull_done"):
            _backfill_pull(env, connection_id, name, owner, progress, index)
        progress["finished_at"] = utcnow().isoformat()
        _save_progress(env, connection_id, name, progress)
        done[name] = progress
    return done


BACKFILL_ORDER = {"contact": ("contact",), "matter": ("contact", "matter"), "all": ("contact", "matter")}


def reset_backfill(session: Session, connection_id: uuid.UUID, entity: str, direction: str) -> None:
    """A new backfill starts from the beginning (in the transaction that enqueues it)."""
    for name in BACKFILL_ORDER[entity]:
        _stream(session, connection_id, name).backfill = {
            "direction": direction,
            "requested_at": utcnow().isoformat(),
        }


def _progress(env: SyncEnv, connection_id: uuid.UUID, entity: str) -> dict[str, Any]:
    with unit_of_work(env.db.writer) as session:
        stream = _stream(session, connection_id, entity)
        return dict(stream.backfill or {})


def _save_progress(env: SyncEnv, connection_id: uuid.UUID, entity: str, progress: dict[str, Any]) -> None:
    with unit_of_work(env.db.writer) as session:
        _stream(session, connection_id, entity).backfill = dict(progress)


def _remote_side(env: SyncEnv, connection_id: uuid.UUID, entity: str) -> tuple[Any, Any]:
    with unit_of_work(env.db.reader) as session:
        conn = session.get(Connection, connection_id)
        assert conn is not None
        vendor = conn.vendor
    connector = env.connectors[vendor]
    return connector.remote(entity), connector.client(connection_id, bulk=True, calls=[])


def _remote_index(
    env: SyncEnv, connection_id: uuid.UUID, entity: str, remote: Any, client: Any
) -> dict[str, list[RemoteRecord]]:
    """Every remote record that no Casebridge record is linked to, by match key."""
    with unit_of_work(env.db.reader) as session:
        linked = set(
            session.scalars(
                select(SyncLink.remote_id).where(
                    SyncLink.connection_id == connection_id,
                    SyncLink.entity == entity,
                    SyncLink.remote_id.is_not(None),
                    SyncLink.local_id.is_not(None),
                )
            )
        )
    index: dict[str, list[RemoteRecord]] = {}
    records, next_url = remote.first_page(client, updated_since=None)
    while True:
        for record in records:
            key = canonical.match_key(entity, record.values)
            if record.remote_id not in linked and key is not None:
                index.setdefault(key, []).append(record)
        if not next_url:
            return index
        records, next_url = remote.next_page(client, next_url)


def _run_one(env: SyncEnv, link_id: uuid.UUID, owner: str, progress: dict[str, Any]) -> None:
    try:
        reconcile(env, link_id, trigger="backfill", owner=owner, bulk=True)
        progress["synced"] = progress.get("synced", 0) + 1
    except LeaseBusy:
        pass  # a reconcile job has it
    except (NeedsPerson, Transient) as exc:
        progress["failed"] = progress.get("failed", 0) + 1
        log.info("backfill: link %s failed: %s", link_id, exc)


def _backfill_push(
    env: SyncEnv,
    connection_id: uuid.UUID,
    entity: str,
    owner: str,
    progress: dict[str, Any],
    index: dict[str, list[RemoteRecord]],
) -> None:
    model = _LOCAL_MODELS[entity]
    spec = env.specs[entity]
    while True:
        after = progress.get("push_after")
        with unit_of_work(env.db.reader) as session:
            unlinked = repository.not_linked(connection_id, entity, model.id)
            stmt = (
                select(model.id).where(model.archived_at.is_(None), unlinked).order_by(model.id).limit(_BATCH)
            )
            if after:
                stmt = stmt.where(model.id > uuid.UUID(after))
            batch = list(session.scalars(stmt))
        if not batch:
            progress["push_done"] = True
            return
        for local_id in batch:
            with unit_of_work(env.db.writer) as session:
                link = repository.ensure_link(session, connection_id, entity, local_id=local_id)
                # Matching needs no synced client (matters match by number): read loosely.
                state = spec.local.read(session, local_id, Refs(session, connection_id, strict=False))
                match = _take_match(index, entity, state.values) if state is not None else None
                if match is not None:
                    repository.absorb_placeholder(session, link, match.remote_id)
                    link.remote_id = match.remote_id
                    repository.advance_snapshot(link, match, authoritative=True)
                    link.base, link.adopt = None, True
                    progress["matched"] = progress.get("matched", 0) + 1
                link_id = link.id
            _run_one(env, link_id, owner, progress)
            progress["push_after"] = str(local_id)
        _save_progress(env, connection_id, entity, progress)


def _take_match(
    index: dict[str, list[RemoteRecord]], entity: str, values: dict[str, Any]
) -> RemoteRecord | None:
    """The one remote record that is the same as ``values`` (none, or several: no match)."""
    key = canonical.match_key(entity, values)
    candidates = [r for r in index.get(key or "", []) if canonical.same_record(entity, values, r.values)]
    if len(candidates) != 1:
        return None
    index[key or ""].remove(candidates[0])
    return candidates[0]


def _backfill_pull(
    env: SyncEnv,
    connection_id: uuid.UUID,
    entity: str,
    owner: str,
    progress: dict[str, Any],
    index: dict[str, list[RemoteRecord]],
) -> None:
    spec = env.specs[entity]
    model = _LOCAL_MODELS[entity]
    local_index: dict[str, list[tuple[uuid.UUID, dict[str, Any]]]] = {}
    with unit_of_work(env.db.reader) as session:
        unlinked = repository.not_linked(connection_id, entity, model.id)
        refs = Refs(session, connection_id, strict=False)
        for local_id in session.scalars(select(model.id).where(model.archived_at.is_(None), unlinked)):
            state = spec.local.read(session, local_id, refs)
            key = canonical.match_key(entity, state.values) if state is not None else None
            if state is not None and key is not None:
                local_index.setdefault(key, []).append((local_id, state.values))
    remaining = sorted((r for records in index.values() for r in records), key=lambda r: r.remote_id)
    done_up_to = int(progress.get("pull_after") or 0)
    for record in remaining:
        if record.remote_id <= done_up_to:
            continue
        key = canonical.match_key(entity, record.values) or ""
        candidates = [
            c for c in local_index.get(key, []) if canonical.same_record(entity, c[1], record.values)
        ]
        with unit_of_work(env.db.writer) as session:
            link = repository.ensure_link(session, connection_id, entity, remote_id=record.remote_id)
            repository.advance_snapshot(link, record, authoritative=True)
            if link.local_id is None and len(candidates) == 1:
                taken = repository.find(session, connection_id, entity, local_id=candidates[0][0])
                if taken is None:
                    link.local_id = candidates[0][0]
                    link.base, link.adopt = None, True
                    local_index[key].remove(candidates[0])
                    progress["matched"] = progress.get("matched", 0) + 1
            link_id = link.id
        _run_one(env, link_id, owner, progress)
        progress["pull_after"] = record.remote_id
        if progress.get("synced", 0) % _BATCH == 0:
            _save_progress(env, connection_id, entity, progress)
    progress["pull_done"] = True

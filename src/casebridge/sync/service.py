"""What the API asks of the sync: a record's status, syncing or linking a record by hand, resolving
conflicts, a connection's health, and the rule that a new matter's client must be synced."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casebridge.contacts.schemas import display_name
from casebridge.db.types import utcnow
from casebridge.kit.context import Principal
from casebridge.kit.problems import conflict, field_error, not_found, validation
from casebridge.models import (
    Connection,
    Contact,
    Job,
    Matter,
    SyncConflict,
    SyncJournal,
    SyncLink,
    SyncRemoteWebhook,
    SyncStream,
)
from casebridge.models.job import AVAILABLE, RUNNING
from casebridge.models.sync import CONNECTED, PENDING, UNLINKED
from casebridge.sync import canonical, ratelimit, repository
from casebridge.sync.capture import RECONCILE, enqueue_reconcile
from casebridge.sync.schemas import (
    ConflictOut,
    ConnectionOut,
    HealthOut,
    JournalOut,
    LinkOut,
    StreamHealth,
    SyncStatusOut,
    WebhookHealth,
)
from casebridge.sync.settings import SyncSettings

JOURNAL_SHOWN = 50


def live_connection(session: Session) -> Connection | None:
    return session.scalar(select(Connection).where(Connection.state == CONNECTED).limit(1))


def get_connection(session: Session, connection_id: uuid.UUID) -> Connection:
    conn = session.get(Connection, connection_id)
    if conn is None:
        raise not_found("connection", connection_id)
    return conn


def _local_exists(session: Session, entity: str, local_id: uuid.UUID) -> bool:
    model = Contact if entity == "contact" else Matter
    return session.get(model, local_id) is not None


def status(session: Session, entity: str, local_id: uuid.UUID) -> SyncStatusOut:
    if not _local_exists(session, entity, local_id):
        raise not_found(entity, local_id)
    link = session.scalar(
        select(SyncLink)
        .where(SyncLink.entity == entity, SyncLink.local_id == local_id)
        .order_by(SyncLink.updated_at.desc())
        .limit(1)
    )
    if link is None:
        conn = live_connection(session)
        return SyncStatusOut(
            entity=entity,
            local_id=local_id,
            connection_id=conn.id if conn else None,
            state="not_synced",
            link=None,
            conflicts=[],
            journal=[],
        )
    conflicts = session.scalars(
        select(SyncConflict)
        .where(SyncConflict.link_id == link.id)
        .order_by(SyncConflict.created_at.desc())
        .limit(50)
    )
    journal = session.scalars(
        select(SyncJournal)
        .where(SyncJournal.link_id == link.id)
        .order_by(SyncJournal.id.desc())
        .limit(JOURNAL_SHOWN)
    )
    return SyncStatusOut(
        entity=entity,
        local_id=local_id,
        connection_id=link.connection_id,
        state=link.state,
        link=LinkOut.of(link),
        conflicts=[ConflictOut.of(c) for c in conflicts],
        journal=[JournalOut.of(j) for j in journal],
    )


def request_sync(session: Session, entity: str, local_id: uuid.UUID, remote_id: int | None) -> SyncStatusOut:
    """Start syncing a record (history), link it to a chosen remote record, or reconcile it now."""
    if not _local_exists(session, entity, local_id):
        raise not_found(entity, local_id)
    conn = live_connection(session)
    if conn is None:
        raise conflict(
            "Casebridge is not connected to Clio: connect first (POST /api/v1/connections).", "not-connected"
        )
    link = repository.find(session, conn.id, entity, local_id=local_id)
    if remote_id is not None:
        taken = repository.find(session, conn.id, entity, remote_id=remote_id)
        if taken is not None and taken.local_id != local_id:
            raise conflict(
                f"Clio {entity} {remote_id} is already linked to another Casebridge {entity} ({taken.local_id}).",
                "already-linked",
            )
        if link is not None and link.remote_id not in (None, remote_id) and link.state != UNLINKED:
            raise conflict(
                f"This {entity} is already linked to Clio {entity} {link.remote_id}; it cannot be linked to "
                f"{remote_id} as well.",
                "already-linked",
            )
        if link is None:
            link = repository.ensure_link(session, conn.id, entity, local_id=local_id)
        if link.remote_id != remote_id:
            link.remote_id = remote_id
            link.remote = link.remote_etag = link.remote_updated_at = None
            link.base = None
            link.adopt = True  # no base yet: where the two records differ is a conflict to review
        link.remote_stale = True
        link.remote_deleted_at = None
        link.state = PENDING
        link.unlinked_reason = None
        link.intent = None
    elif link is None:
        link = repository.ensure_link(session, conn.id, entity, local_id=local_id)
    elif link.state == UNLINKED:
        # Sync again from scratch: a new record on the other side.
        link.state, link.unlinked_reason = PENDING, None
        link.remote_id = None
        link.remote = link.remote_etag = link.remote_updated_at = link.remote_deleted_at = None
        link.base = None
        link.intent = None
    link.error, link.error_count, link.next_retry_at = None, 0, None
    session.flush()
    enqueue_reconcile(session, link.id, trigger="requested")
    return status(session, entity, local_id)


def resolve_conflict(
    session: Session, principal: Principal, conflict_id: uuid.UUID, pick: str | None, value: Any
) -> ConflictOut:
    row = session.get(SyncConflict, conflict_id)
    if row is None:
        raise not_found("conflict", conflict_id)
    if row.state != "open":
        raise conflict(f"This conflict is already {row.state} ({row.resolution}).", "conflict-closed")
    if pick is None:
        try:
            value = canonical.given(row.entity, row.field, value)
        except ValueError as exc:
            raise validation(
                [field_error("body.value", str(exc))], f"That is not a {row.field}: {exc}."
            ) from None
    chosen = row.local_value if pick == "casebridge" else row.remote_value if pick == "clio" else value
    row.state = "resolved"
    row.resolution = pick or "value"
    row.resolved_value = chosen
    row.resolved_at = utcnow()
    row.resolved_by = principal.label
    session.flush()
    enqueue_reconcile(session, row.link_id, trigger="conflict resolved")
    return ConflictOut.of(row)


def check_matter_client(session: Session, client_id: uuid.UUID) -> None:
    """With a live connection whose ``auto_sync_clients`` is off, a matter's client must be synced
    already (the Prolegis rule: the user is asked to sync the client before creating the matter)."""
    conn = live_connection(session)
    if conn is None:
        return
    if SyncSettings.model_validate(conn.settings or {}).auto_sync_clients:
        return
    link = repository.find(session, conn.id, "contact", local_id=client_id)
    if link is not None and link.state != UNLINKED:
        return
    contact = session.get(Contact, client_id)
    if contact is None:
        return  # the matters service says the contact does not exist
    name = display_name(contact)
    raise validation(
        [
            field_error(
                "body.client_id",
                f"the client {name!r} is not synced with Clio; sync it first with "
                f"POST /api/v1/contacts/{client_id}/sync, or turn on auto_sync_clients",
                "client_not_synced",
            )
        ],
        detail=f"The matter's client {name!r} is not a Clio contact yet, so the matter cannot be created in Clio.",
    )


LAG_PROBLEM = timedelta(minutes=5)  # a change waiting longer than this makes the connection unhealthy


def health(session: Session, conn: Connection) -> HealthOut:
    now = utcnow()
    settings = SyncSettings.model_validate(conn.settings or {})
    hooks = list(session.scalars(select(SyncRemoteWebhook).where(SyncRemoteWebhook.connection_id == conn.id)))
    streams = list(session.scalars(select(SyncStream).where(SyncStream.connection_id == conn.id)))
    queue_rows = session.execute(
        select(Job.kind, Job.state, func.count())
        .where(Job.kind.like("sync.%"), Job.state.in_([AVAILABLE, RUNNING]))
        .group_by(Job.kind, Job.state)
    )
    queue: dict[str, dict[str, int]] = {}
    for kind, state, n in queue_rows:
        queue.setdefault(kind, {})[state] = int(n)
    oldest_due = session.scalar(
        select(func.min(Job.run_at)).where(
            Job.kind == RECONCILE, Job.state.in_([AVAILABLE, RUNNING]), Job.run_at <= now
        )
    )
    lag = max(0.0, (now - oldest_due).total_seconds()) if oldest_due is not None else 0.0
    budget = ratelimit.view(session, conn.id)
    open_conflicts = int(
        session.scalar(
            select(func.count())
            .select_from(SyncConflict)
            .where(SyncConflict.connection_id == conn.id, SyncConflict.state == "open")
        )
        or 0
    )
    errors = session.scalars(
        select(SyncJournal)
        .where(
            SyncJournal.connection_id == conn.id,
            SyncJournal.action == "error",
            SyncJournal.at > now - timedelta(days=1),
        )
        .order_by(SyncJournal.id.desc())
        .limit(20)
    )
    problems: list[str] = []
    if conn.state != CONNECTED:
        problems.append(f"the connection is {conn.state}")
    if conn.token_expires_at is not None and conn.token_expires_at < now:
        problems.append("the access token has expired and could not be refreshed")
    for stream in streams:
        if stream.last_poll_error:
            problems.append(f"the last poll of {stream.entity}s failed: {stream.last_poll_error}")
        if stream.last_poll_at is not None and now - stream.last_poll_at > timedelta(
            seconds=settings.poll_interval_seconds * 3 + 60
        ):
            problems.append(
                f"{stream.entity}s have not been polled since {stream.last_poll_at:%Y-%m-%d %H:%M:%S} UTC"
            )
    for hook in hooks:
        if hook.status not in ("enabled",):
            problems.append(f"the {hook.model} webhook is {hook.status}")
        elif hook.expires_at is not None and hook.expires_at < now + timedelta(days=1):
            problems.append(f"the {hook.model} webhook expires at {hook.expires_at:%Y-%m-%d %H:%M} UTC")
    if lag > LAG_PROBLEM.total_seconds():
        problems.append(f"changes have waited {lag:.0f} s to sync (see queue and rate_limit)")
    links = repository.count_by_state(session, conn.id)
    errored = sum(by_state.get("error", 0) for by_state in links.values())
    if errored:
        problems.append(
            f"{errored} record(s) failed to sync (see GET /api/v1/connections/{conn.id}/links?state=error)"
        )
    return HealthOut(
        connection=ConnectionOut.of(conn),
        healthy=not problems,
        problems=problems,
        webhooks=[
            WebhookHealth(
                model=h.model,
                remote_id=h.remote_id,
                status=h.status,
                expires_at=h.expires_at,
                last_delivery_at=h.last_delivery_at,
                deliveries=h.deliveries,
            )
            for h in hooks
        ],
        streams=[
            StreamHealth(
                entity=s.entity,
                poll_cursor=s.poll_cursor,
                last_poll_at=s.last_poll_at,
                last_poll_error=s.last_poll_error,
                poll_lag_seconds=(now - s.last_poll_at).total_seconds() if s.last_poll_at else None,
                last_full_at=s.last_full_at,
                full_in_progress=s.full_started_at is not None,
                backfill=s.backfill,
            )
            for s in streams
        ],
        queue=queue,
        lag_seconds=round(lag, 3),
        rate_limit=None
        if budget is None
        else {
            "limit": budget.limit,
            "remaining": budget.remaining,
            "reset_at": budget.reset_at,
            "in_flight": budget.in_flight,
            "requests_sent": budget.granted,
            "rate_limited_responses": budget.limited,
        },
        links=links,
        open_conflicts=open_conflicts,
        recent_errors=[JournalOut.of(j) for j in errors],
    )

"""The sync's jobs, its event subscriber, and how a job turns the engine's typed errors into outcomes.

- ``sync.reconcile`` {link_id, trigger}: one link (unique and exclusive per link).
- ``sync.poll`` {connection_id}: one poll, then itself again after the interval.
- ``sync.full`` {connection_id}: a full reconcile of each entity, then itself again after the interval.
- ``sync.webhooks`` {connection_id}: create, activate, renew or re-create the remote webhooks; hourly.
- ``sync.backfill`` {connection_id, entity, direction}: history, resumable.
- ``sync.maintain`` (every minute): keeps every connected connection's chains alive, retries failed
  links when due, prunes the inbox and the journal.

The ``sync`` subscriber kind is level-triggered: for each business event on a contact or matter (not
caused by the sync itself) it enqueues the record's reconcile inside the dispatcher's transaction.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from casebridge.db.types import utcnow
from casebridge.events.delivery import SubscriberKind, register_kind
from casebridge.jobs import queue
from casebridge.jobs.errors import RetryLater, Snooze
from casebridge.jobs.registry import JobRegistry
from casebridge.jobs.worker import JobContext
from casebridge.models import Connection, Event, EventSubscription, Job, SyncInboxEntry
from casebridge.models.job import AVAILABLE, RUNNING
from casebridge.models.sync import CONNECTED, UNLINKED
from casebridge.sync import capture, repository
from casebridge.sync.capture import RECONCILE, enqueue_reconcile
from casebridge.sync.engine import SyncEnv, reconcile
from casebridge.sync.errors import LeaseBusy, NeedsPerson, RateLimited, Transient, Unauthorized
from casebridge.sync.runtime import SPECS, sync_env
from casebridge.sync.settings import SyncSettings

log = logging.getLogger("casebridge.sync")

KIND = "sync"
POLL, FULL, WEBHOOKS, BACKFILL, MAINTAIN = (
    "sync.poll",
    "sync.full",
    "sync.webhooks",
    "sync.backfill",
    "sync.maintain",
)
INBOX_DAYS = 7
JOURNAL_DAYS = 90


def _env(ctx: JobContext) -> SyncEnv:
    if ctx.settings is None:
        raise RuntimeError("sync jobs need the process settings")
    return sync_env(ctx.db, ctx.settings)


def _jitter(seconds: float) -> float:
    return seconds + random.uniform(0, 0.25 + seconds * 0.1)


def _outcome(exc: Exception, attempt: int) -> Exception | None:
    """What the worker should do after the engine raised ``exc``: None means "done"."""
    if isinstance(exc, LeaseBusy):
        return Snooze(_jitter(0.5), "another worker is syncing this record")
    if isinstance(exc, RateLimited):
        return Snooze(_jitter(exc.seconds), "waiting for the rate limit window")
    if isinstance(exc, Transient):
        return RetryLater(queue.backoff_seconds(attempt, base=1.0, cap=600.0), str(exc))
    if isinstance(exc, NeedsPerson | Unauthorized):
        return None  # recorded on the link or the connection; a person (or a new change) moves it on
    return exc


# --- jobs -----------------------------------------------------------------------------------------


def run_reconcile(ctx: JobContext) -> None:
    try:
        reconcile(
            _env(ctx),
            uuid.UUID(ctx.args["link_id"]),
            trigger=str(ctx.args.get("trigger") or "change"),
            owner=f"job:{ctx.job.id}",
        )
    except (LeaseBusy, RateLimited, Transient, NeedsPerson, Unauthorized) as exc:
        outcome = _outcome(exc, ctx.job.attempt)
        if outcome is not None:
            raise outcome from exc


def run_now(session: Session, kind: str, connection_id: uuid.UUID) -> None:
    """Bring the connection's timed job (poll, full reconcile, webhook check) forward to now."""
    key = f"{kind}:{connection_id}"
    queue.enqueue(
        session,
        kind,
        {"connection_id": str(connection_id)},
        unique_key=key,
        concurrency_key=key,
        priority=queue.INTERACTIVE if kind == POLL else queue.BULK,
        max_attempts=1000,
        expedite=True,
    )


def _again(session: Session, kind: str, connection_id: uuid.UUID, seconds: float) -> None:
    key = f"{kind}:{connection_id}"
    queue.enqueue(
        session,
        kind,
        {"connection_id": str(connection_id)},
        run_at=utcnow() + timedelta(seconds=seconds),
        unique_key=key,
        concurrency_key=key,
        priority=queue.INTERACTIVE if kind == POLL else queue.BULK,
        max_attempts=1000,
    )


def _connected(ctx: JobContext, connection_id: uuid.UUID) -> SyncSettings | None:
    with ctx.unit_of_work() as session:
        conn = session.get(Connection, connection_id)
        if conn is None or conn.state != CONNECTED:
            return None
        return SyncSettings.model_validate(conn.settings or {})


def run_poll(ctx: JobContext) -> None:
    connection_id = uuid.UUID(ctx.args["connection_id"])
    settings = _connected(ctx, connection_id)
    if settings is None:
        return
    try:
        capture.poll(_env(ctx), connection_id)
    except (RateLimited, Transient) as exc:
        log.info("poll of connection %s: %s", connection_id, exc)
    except Unauthorized:
        return
    with ctx.unit_of_work() as session:
        _again(session, POLL, connection_id, settings.poll_interval_seconds)


def run_full(ctx: JobContext) -> None:
    connection_id = uuid.UUID(ctx.args["connection_id"])
    settings = _connected(ctx, connection_id)
    if settings is None:
        return
    env = _env(ctx)
    for entity in SPECS:
        try:
            capture.full_pass(env, connection_id, entity)
        except RateLimited as exc:
            raise Snooze(_jitter(exc.seconds), "full reconcile waiting for the rate limit") from exc
        except Transient as exc:
            raise RetryLater(queue.backoff_seconds(ctx.job.attempt, base=5.0, cap=900.0), str(exc)) from exc
        except Unauthorized:
            return
    capture.retry_due(env, connection_id)
    with ctx.unit_of_work() as session:
        _again(session, FULL, connection_id, settings.full_reconcile_hours * 3600)


def run_webhooks(ctx: JobContext) -> None:
    from casebridge.connectors.clio import webhooks

    connection_id = uuid.UUID(ctx.args["connection_id"])
    settings = _connected(ctx, connection_id)
    if settings is None:
        return
    env = _env(ctx)
    public_url = ctx.settings.public_url if ctx.settings else None
    try:
        if settings.webhooks and public_url:
            webhooks.ensure(env, connection_id, public_url)
        else:
            webhooks.remove(env, connection_id)
    except RateLimited as exc:
        raise Snooze(_jitter(exc.seconds)) from exc
    except Transient as exc:
        raise RetryLater(queue.backoff_seconds(ctx.job.attempt, base=5.0, cap=900.0), str(exc)) from exc
    except Unauthorized:
        return
    with ctx.unit_of_work() as session:
        _again(session, WEBHOOKS, connection_id, webhooks.CHECK_EVERY.total_seconds())


def run_backfill(ctx: JobContext) -> None:
    connection_id = uuid.UUID(ctx.args["connection_id"])
    if _connected(ctx, connection_id) is None:
        return
    try:
        capture.backfill(
            _env(ctx), connection_id, str(ctx.args["entity"]), str(ctx.args["direction"]), f"job:{ctx.job.id}"
        )
    except RateLimited as exc:
        raise Snooze(_jitter(exc.seconds), "backfill waiting for the rate limit window") from exc
    except Transient as exc:
        raise RetryLater(queue.backoff_seconds(ctx.job.attempt, base=5.0, cap=900.0), str(exc)) from exc
    except Unauthorized:
        return


def run_maintain(ctx: JobContext) -> None:
    env = _env(ctx)
    with ctx.unit_of_work() as session:
        ids = list(session.scalars(select(Connection.id).where(Connection.state == CONNECTED)))
        for connection_id in ids:
            start_chains(session, connection_id, delay=0)
        now = utcnow()
        session.execute(
            delete(SyncInboxEntry).where(SyncInboxEntry.received_at < now - timedelta(days=INBOX_DAYS))
        )
        repository.prune_journal(session, now - timedelta(days=JOURNAL_DAYS))
    for connection_id in ids:
        capture.retry_due(env, connection_id)


def start_chains(session: Session, connection_id: uuid.UUID, *, delay: float = 0) -> None:
    """Make sure the connection's poll, full-reconcile and webhook jobs exist (no-ops when they wait)."""
    for kind in (POLL, WEBHOOKS):
        _again(session, kind, connection_id, delay)
    conn = session.get(Connection, connection_id)
    hours = SyncSettings.model_validate(conn.settings or {}).full_reconcile_hours if conn else 6.0
    _again(session, FULL, connection_id, max(delay, hours * 3600))


def backfill_running(session: Session, connection_id: uuid.UUID) -> bool:
    return bool(
        session.scalar(
            select(Job.id)
            .where(Job.unique_key == f"{BACKFILL}:{connection_id}", Job.state.in_([AVAILABLE, RUNNING]))
            .limit(1)
        )
        or session.scalar(
            select(Job.id)
            .where(Job.concurrency_key == f"{BACKFILL}:{connection_id}", Job.state == RUNNING)
            .limit(1)
        )
    )


def enqueue_backfill(session: Session, connection_id: uuid.UUID, entity: str, direction: str) -> None:
    """One backfill at a time per connection (``entity``: contact, matter or all; matters take their
    clients first)."""
    capture.reset_backfill(session, connection_id, entity, direction)
    key = f"{BACKFILL}:{connection_id}"
    queue.enqueue(
        session,
        BACKFILL,
        {"connection_id": str(connection_id), "entity": entity, "direction": direction},
        priority=queue.BULK,
        unique_key=key,
        concurrency_key=key,
        max_attempts=1000,
    )


# --- the event subscriber -------------------------------------------------------------------------


def wants(_session: Session, sub: EventSubscription, event: Event) -> bool:
    return event.entity_type in SPECS and event.actor_id != sub.target_id


def react(session: Session, sub: EventSubscription, event: Event) -> None:
    if sub.target_id is None:
        return
    connection_id = uuid.UUID(sub.target_id)
    try:
        local_id = uuid.UUID(event.entity_id)
    except ValueError:
        return
    if event.type == f"{event.entity_type}.created":
        link_id = repository.ensure_link(session, connection_id, event.entity_type, local_id=local_id).id
    else:
        link = repository.find(session, connection_id, event.entity_type, local_id=local_id)
        if link is None or link.state == UNLINKED:
            return  # not synced (it existed before the connection): history is synced on request
        link_id = link.id
    enqueue_reconcile(session, link_id, trigger=event.type)


def subscription_name(connection_id: uuid.UUID) -> str:
    return f"{KIND}:{connection_id}"


def register(registry: JobRegistry) -> None:
    register_kind(SubscriberKind(name=KIND, wants=wants, react=react))
    registry.register(RECONCILE, run_reconcile, keep_completed=False)
    registry.register(POLL, run_poll, keep_completed=False)
    registry.register(FULL, run_full)
    registry.register(WEBHOOKS, run_webhooks)
    registry.register(BACKFILL, run_backfill)
    registry.register(MAINTAIN, run_maintain, keep_completed=False)
    registry.every("sync-maintain", MAINTAIN, "* * * * *", priority=queue.BULK)

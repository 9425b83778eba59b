"""Fan-out of business events to subscribers: at least once each, in order per entity, isolated.

Two job kinds do the work:

- ``events.dispatch`` (one at a time, at most one waiting) moves each active subscription's cursor
  over new events, writes a ``pending`` delivery for each event the subscriber wants, and enqueues
  one ``events.deliver`` job per (subscriber, entity) that got deliveries. Cursor and deliveries are
  written in one transaction, so a crash never loses or half-writes a fan-out.
- ``events.deliver`` (one at a time per subscriber and entity) hands that entity's pending deliveries
  to the subscriber in event order. On failure it retries with backoff and the entity's later events
  wait behind the failed one (order per entity); other entities and other subscribers carry on.
  After the subscriber kind's last attempt the delivery is marked ``failed`` and the queue moves on.

A subscriber *kind* (webhook, workflows, a connector) registers how to filter and deliver; a
*subscription* row is one subscriber of that kind with its own cursor.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.events.outbox import DISPATCH, request_dispatch, subscribers_changed
from casebridge.events.schemas import EventOut
from casebridge.jobs import queue
from casebridge.jobs.errors import RetryLater
from casebridge.jobs.registry import JobRegistry
from casebridge.jobs.worker import JobContext
from casebridge.models import Event, EventDelivery, EventSubscription
from casebridge.models.subscription import DELIVERED, FAILED, PENDING

log = logging.getLogger("casebridge.events")

DELIVER = "events.deliver"
BATCH = 500


@dataclass(frozen=True)
class Delivery:
    """What a subscriber's ``deliver`` gets: the event, and which attempt this is (1-based)."""

    ctx: JobContext
    subscription: EventSubscription
    event: EventOut
    attempt: int


@dataclass(frozen=True)
class SubscriberKind:
    name: str
    # Cheap filter run by the dispatcher inside its transaction (for example type patterns).
    wants: Callable[[Session, EventSubscription, Event], bool]
    # Do the delivery; raise to retry. Runs outside any transaction: open your own to write.
    deliver: Callable[[Delivery], None] | None = None
    # A level-triggered kind (the sync engine) reacts to each wanted event inside the dispatcher's
    # transaction, typically by enqueueing a job keyed by the record, and keeps no delivery rows: its
    # job reads the record's current state, so it needs neither per-event order nor per-event retries.
    react: Callable[[Session, EventSubscription, Event], None] | None = None
    max_attempts: int = 20
    backoff_base: float = 1.0
    backoff_cap: float = 3600.0
    # Called once a delivery has used its last attempt (for example to disable a failing webhook).
    on_exhausted: Callable[[JobContext, EventSubscription, EventOut, str], None] | None = None


KINDS: dict[str, SubscriberKind] = {}


def register_kind(kind: SubscriberKind) -> None:
    KINDS[kind.name] = kind


def subscribe(session: Session, *, name: str, kind: str, target_id: str | None = None) -> EventSubscription:
    """A new subscriber starts at the newest event: it receives what happens from now on."""
    newest = session.scalar(select(func.max(Event.id))) or 0
    sub = EventSubscription(name=name, kind=kind, target_id=target_id, cursor=newest, active=True)
    session.add(sub)
    session.flush()
    subscribers_changed()
    return sub


def entity_key(event: Event) -> str:
    return f"{event.entity_type}:{event.entity_id}"


def _deliver_key(subscription_id: uuid.UUID, key: str) -> str:
    return f"deliver:{subscription_id}:{key}"


def enqueue_delivery(session: Session, subscription_id: uuid.UUID, key: str) -> None:
    """Make sure one ``events.deliver`` job will hand this entity's pending deliveries over (a no-op
    while one waits; at most one runs per subscriber and entity, which keeps their order)."""
    job_key = _deliver_key(subscription_id, key)
    queue.enqueue(
        session,
        DELIVER,
        {"subscription_id": str(subscription_id), "entity_key": key},
        priority=queue.INTERACTIVE,
        unique_key=job_key,
        concurrency_key=job_key,
        max_attempts=100_000,  # the delivery's own attempts decide when to give up
    )


def resume(session: Session, sub: EventSubscription) -> None:
    """Reactivate a paused subscription: deliveries that waited get their delivery jobs again, and the
    dispatcher catches up with the events that happened meanwhile (nothing is skipped)."""
    sub.active = True
    session.flush()
    keys = session.scalars(
        select(EventDelivery.entity_key)
        .where(EventDelivery.subscription_id == sub.id, EventDelivery.state == PENDING)
        .distinct()
        .order_by(EventDelivery.entity_key)
    )
    for key in list(keys):
        enqueue_delivery(session, sub.id, key)
    request_dispatch(session)
    subscribers_changed()


def dispatch(ctx: JobContext) -> None:
    more = False
    with ctx.unit_of_work() as session:
        subs = list(session.scalars(select(EventSubscription).where(EventSubscription.active.is_(True))))
        for sub in subs:
            kind = KINDS.get(sub.kind)
            if kind is None:
                continue
            events = list(
                session.scalars(select(Event).where(Event.id > sub.cursor).order_by(Event.id).limit(BATCH))
            )
            if not events:
                continue
            more = more or len(events) == BATCH
            keys: set[str] = set()
            for ev in events:
                if kind.wants(session, sub, ev):
                    if kind.react is not None:
                        kind.react(session, sub, ev)
                        continue
                    key = entity_key(ev)
                    session.add(EventDelivery(subscription_id=sub.id, event_id=ev.id, entity_key=key))
                    keys.add(key)
            sub.cursor = events[-1].id
            for key in sorted(keys):
                enqueue_delivery(session, sub.id, key)
        if more:
            request_dispatch(session)


@dataclass(frozen=True)
class _Next:
    subscription: EventSubscription  # detached snapshot
    delivery_id: int
    attempt: int
    event: EventOut


def _next_pending(session: Session, sub_id: uuid.UUID, key: str) -> _Next | None:
    """The entity's oldest pending delivery for an active subscription, or None."""
    sub = session.get(EventSubscription, sub_id)
    if sub is None or not sub.active:
        return None  # deleted or paused: its pending deliveries wait (or went with it)
    row = session.execute(
        select(EventDelivery.id, EventDelivery.attempts, Event)
        .join(Event, Event.id == EventDelivery.event_id)
        .where(
            EventDelivery.subscription_id == sub_id,
            EventDelivery.entity_key == key,
            EventDelivery.state == PENDING,
        )
        .order_by(EventDelivery.event_id)
        .limit(1)
    ).first()
    if row is None:
        return None
    delivery_id, attempts, event = row
    found = _Next(sub, delivery_id, attempts + 1, EventOut.of(event))
    session.expunge(sub)
    return found


def deliver(ctx: JobContext) -> None:
    """Hand the entity's pending deliveries to the subscriber, oldest first. The first lookup reads
    without taking the writer; afterwards "mark delivered" and "find the next" share one transaction."""
    sub_id = uuid.UUID(ctx.args["subscription_id"])
    key = str(ctx.args["entity_key"])
    with unit_of_work(ctx.db.reader) as session:
        found = _next_pending(session, sub_id, key)
    while found is not None:
        sub, delivery_id, attempt, out = found.subscription, found.delivery_id, found.attempt, found.event
        kind = KINDS.get(sub.kind)
        if kind is None or kind.deliver is None:
            raise RetryLater(60, f"no subscriber kind {sub.kind!r} that delivers is registered here")
        try:
            kind.deliver(Delivery(ctx, sub, out, attempt))
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
            exhausted = attempt >= kind.max_attempts
            with ctx.unit_of_work() as session:
                session.execute(
                    update(EventDelivery)
                    .where(EventDelivery.id == delivery_id)
                    .values(attempts=attempt, last_error=error, **({"state": FAILED} if exhausted else {}))
                )
            if not exhausted:
                raise RetryLater(
                    exc.seconds
                    if isinstance(exc, RetryLater)  # the subscriber knows when (a receiver's Retry-After)
                    else queue.backoff_seconds(attempt, base=kind.backoff_base, cap=kind.backoff_cap),
                    f"delivery of event {out.id} to {sub.name} failed (attempt {attempt}): {error}",
                ) from exc
            log.warning("giving up delivering event %s to %s after %d attempts", out.id, sub.name, attempt)
            if kind.on_exhausted is not None:
                kind.on_exhausted(ctx, sub, out, error)
            with unit_of_work(ctx.db.reader) as session:
                found = _next_pending(session, sub_id, key)
            continue
        with ctx.unit_of_work() as session:
            session.execute(
                update(EventDelivery)
                .where(EventDelivery.id == delivery_id)
                .values(attempts=attempt, state=DELIVERED, delivered_at=utcnow())
            )
            found = _next_pending(session, sub_id, key)


def register_jobs(registry: JobRegistry) -> None:
    registry.register(DISPATCH, dispatch, keep_completed=False)
    registry.register(DELIVER, deliver, keep_completed=False)

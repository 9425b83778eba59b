"""All SQL for webhooks and their delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from casebridge.models import EventDelivery, Webhook, WebhookDelivery
from casebridge.models.subscription import DELIVERED, FAILED, PENDING

ORDER_COLUMNS = {"created_at": Webhook.created_at, "updated_at": Webhook.updated_at}
DELIVERY_ORDER = {"id": WebhookDelivery.id}


def get(session: Session, webhook_id: uuid.UUID, *, for_update: bool = False) -> Webhook | None:
    stmt = select(Webhook).where(Webhook.id == webhook_id)
    if for_update:
        stmt = stmt.with_for_update(key_share=True)  # FOR NO KEY UPDATE: log inserts (FK) don't wait
    return session.scalar(stmt)


def list_query(*, active: bool | None) -> Select[Webhook]:
    stmt = select(Webhook)
    if active is not None:
        stmt = stmt.where(Webhook.active.is_(active))
    return stmt


def deliveries_query(
    webhook_id: uuid.UUID, *, succeeded: bool | None, event_id: int | None
) -> Select[WebhookDelivery]:
    stmt = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if succeeded is not None:
        stmt = stmt.where(WebhookDelivery.succeeded.is_(succeeded))
    if event_id is not None:
        stmt = stmt.where(WebhookDelivery.event_id == event_id)
    return stmt


def get_delivery(session: Session, webhook_id: uuid.UUID, delivery_id: int) -> WebhookDelivery | None:
    return session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.webhook_id == webhook_id
        )
    )


def last_attempt(session: Session, webhook_id: uuid.UUID, event_id: int | None) -> int:
    """The highest attempt number logged for this event (pings: for all pings)."""
    cond = WebhookDelivery.event_id.is_(None) if event_id is None else WebhookDelivery.event_id == event_id
    value = session.scalar(
        select(func.max(WebhookDelivery.attempt)).where(WebhookDelivery.webhook_id == webhook_id, cond)
    )
    return int(value or 0)


def first_attempt_at(session: Session, webhook_id: uuid.UUID, event_id: int) -> datetime | None:
    return session.scalar(
        select(func.min(WebhookDelivery.created_at)).where(
            WebhookDelivery.webhook_id == webhook_id, WebhookDelivery.event_id == event_id
        )
    )


def reset_pending_attempts(session: Session, subscription_id: uuid.UUID) -> None:
    """Give the deliveries that waited a full retry schedule again (the webhook was re-enabled)."""
    session.execute(
        update(EventDelivery)
        .where(EventDelivery.subscription_id == subscription_id, EventDelivery.state == PENDING)
        .values(attempts=0)
    )


def requeue_failed(session: Session, subscription_id: uuid.UUID, since_event_id: int) -> int:
    """Put failed deliveries of events ``>= since_event_id`` back to pending with fresh attempts."""
    result = session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.subscription_id == subscription_id,
            EventDelivery.state == FAILED,
            EventDelivery.event_id >= since_event_id,
        )
        .values(state=PENDING, attempts=0)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def mark_failed_delivered(session: Session, subscription_id: uuid.UUID, event_id: int, at: datetime) -> None:
    """A manual redelivery succeeded: a delivery that had given up counts as delivered."""
    session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.subscription_id == subscription_id,
            EventDelivery.event_id == event_id,
            EventDelivery.state == FAILED,
        )
        .values(state=DELIVERED, delivered_at=at)
    )


def prune_log(session: Session, older_than: datetime) -> int:
    result = session.execute(delete(WebhookDelivery).where(WebhookDelivery.created_at < older_than))
    return int(getattr(result, "rowcount", 0) or 0)

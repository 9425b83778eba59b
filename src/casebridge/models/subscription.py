"""Event subscribers (webhooks, workflows, connectors), each with its own durable cursor, and the
per-subscriber delivery of every event it wants."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from casebridge.db.types import BigIntPK, UTCDateTime, utcnow
from casebridge.models.base import Base, IdMixin, TimestampMixin

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


class EventSubscription(IdMixin, TimestampMixin, Base):
    __tablename__ = "event_subscriptions"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(50))  # a registered subscriber kind: webhook, workflows, ...
    target_id: Mapped[str | None] = mapped_column(String(64))
    # The last event id fanned out to this subscriber's deliveries.
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    active: Mapped[bool] = mapped_column(default=True)


class EventDelivery(Base):
    __tablename__ = "event_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        Index("ix_event_deliveries_queue", "subscription_id", "entity_key", "state", "event_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("event_subscriptions.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("events.id", ondelete="CASCADE"))
    entity_key: Mapped[str] = mapped_column(String(120))
    state: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

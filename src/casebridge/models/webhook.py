"""Outbound webhooks (signed deliveries of business events) and their delivery log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casebridge.db.types import BigIntPK, PortableJSON, UTCDateTime, utcnow
from casebridge.models.base import Base, IdMixin, TimestampMixin, VersionedMixin


class Webhook(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "webhooks"

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500))
    # Event type patterns: exact types, "matter.*" prefixes, or "*".
    event_types: Mapped[list[str]] = mapped_column(PortableJSON, default=list)
    # Optional condition (the safe expression language) over the event.
    filter: Mapped[Any | None] = mapped_column(PortableJSON)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    subscription_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("event_subscriptions.id", ondelete="SET NULL")
    )


class WebhookDelivery(Base):
    """One HTTP attempt to deliver one event (or a test ping) to one webhook."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(default=1)
    succeeded: Mapped[bool] = mapped_column(default=False)
    status_code: Mapped[int | None]
    latency_ms: Mapped[int | None]
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

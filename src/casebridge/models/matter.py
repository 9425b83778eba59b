"""Matters (cases/files): numbering, status and its dates, client, participants, fee estimate."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casebridge.db.types import Amount, UTCDateTime, utcnow
from casebridge.models.base import Base, IdMixin, TimestampMixin, VersionedMixin


class Matter(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "matters"

    number: Mapped[int] = mapped_column(unique=True)
    display_number: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), index=True)  # open | pending | closed
    open_date: Mapped[date | None]
    pending_date: Mapped[date | None]
    close_date: Mapped[date | None]
    practice_area: Mapped[str | None] = mapped_column(String(200), index=True)
    responsible_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    client_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id"), index=True)
    fee_estimate_amount: Mapped[Decimal | None] = mapped_column(Amount)
    fee_estimate_currency: Mapped[str | None] = mapped_column(String(3))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    participants: Mapped[list[MatterParticipant]] = relationship(
        cascade="all, delete-orphan", order_by="MatterParticipant.position", lazy="raise"
    )


class MatterParticipant(IdMixin, Base):
    __tablename__ = "matter_participants"
    __table_args__ = (UniqueConstraint("matter_id", "contact_id", "role"),)

    matter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("matters.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id"), index=True)
    role: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

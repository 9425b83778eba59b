"""Activities: time entries (hourly or flat fee) and expenses (disbursements), with approval states."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casebridge.db.types import Amount, UTCDateTime
from casebridge.models.base import Base, IdMixin, TimestampMixin, VersionedMixin


class Activity(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_matter_date", "matter_id", "date"),)

    kind: Mapped[str] = mapped_column(String(10))  # time | expense
    matter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("matters.id"), index=True)
    date: Mapped[date]
    state: Mapped[str] = mapped_column(String(10), index=True)  # draft | submitted | approved | billed
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)  # fee earner
    currency: Mapped[str] = mapped_column(String(3))
    # Time entries: billing_method hourly (duration x rate) or flat (flat_amount).
    billing_method: Mapped[str | None] = mapped_column(String(10))
    duration_seconds: Mapped[int | None]
    rate_amount: Mapped[Decimal | None] = mapped_column(Amount)
    flat_amount: Mapped[Decimal | None] = mapped_column(Amount)
    # Expenses.
    expense_amount: Mapped[Decimal | None] = mapped_column(Amount)
    supplier_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    category: Mapped[str | None] = mapped_column(String(200))
    # Narrative (time) or description (expense).
    description: Mapped[str | None] = mapped_column(Text)
    # Computed on every write by casebridge.money rules and stored for reporting.
    total_amount: Mapped[Decimal] = mapped_column(Amount)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    billed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bill_reference: Mapped[str | None] = mapped_column(String(200))

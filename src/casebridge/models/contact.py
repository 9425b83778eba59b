"""Contacts: people and companies, with their emails, phones, addresses and party types."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casebridge.db.types import UTCDateTime
from casebridge.models.base import Base, IdMixin, TimestampMixin, VersionedMixin


class Contact(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "contacts"

    kind: Mapped[str] = mapped_column(String(10))  # person | company
    title: Mapped[str | None] = mapped_column(String(50))
    first_name: Mapped[str | None] = mapped_column(String(200))
    middle_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    company_name: Mapped[str | None] = mapped_column(String(300))
    # Denormalised "Last, First" or company name, for ordering and search.
    sort_name: Mapped[str] = mapped_column(String(400), index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    # Set when another system (for example the PMS) masters this record: only integrations may change it.
    mastered_by: Mapped[str | None] = mapped_column(String(50))
    external_ref: Mapped[str | None] = mapped_column(String(200))
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    emails: Mapped[list[ContactEmail]] = relationship(
        cascade="all, delete-orphan", order_by="ContactEmail.position", lazy="raise"
    )
    phones: Mapped[list[ContactPhone]] = relationship(
        cascade="all, delete-orphan", order_by="ContactPhone.position", lazy="raise"
    )
    addresses: Mapped[list[ContactAddress]] = relationship(
        cascade="all, delete-orphan", order_by="ContactAddress.position", lazy="raise"
    )
    party_types: Mapped[list[ContactPartyType]] = relationship(cascade="all, delete-orphan", lazy="raise")


class ContactEmail(IdMixin, Base):
    __tablename__ = "contact_emails"

    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(20))
    is_primary: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)


class ContactPhone(IdMixin, Base):
    __tablename__ = "contact_phones"

    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(20))
    is_primary: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)


class ContactAddress(IdMixin, Base):
    __tablename__ = "contact_addresses"

    contact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    street: Mapped[str | None] = mapped_column(String(500))
    city: Mapped[str | None] = mapped_column(String(200))
    region: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(50))
    country: Mapped[str | None] = mapped_column(String(100))
    is_primary: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)


class ContactPartyType(Base):
    __tablename__ = "contact_party_types"
    __table_args__ = (Index("ix_contact_party_types_party_type", "party_type", "contact_id"),)

    contact_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    party_type: Mapped[str] = mapped_column(String(20), primary_key=True)  # client | supplier | other

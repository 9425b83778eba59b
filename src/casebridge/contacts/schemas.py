"""Request and response shapes for contacts."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator

from casebridge.kit.etag import etag_for
from casebridge.kit.schemas import Name, StrictModel
from casebridge.models import Contact

ContactKind = Literal["person", "company"]
PartyType = Literal["client", "supplier", "other"]
EmailKind = Literal["work", "home", "other"]
PhoneKind = Literal["work", "home", "mobile", "fax", "other"]
AddressKind = Literal["work", "home", "billing", "other"]
Line = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class EmailIn(StrictModel):
    id: uuid.UUID | None = Field(
        default=None, description="Keep an existing item's id to update it in place."
    )
    address: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320)]
    kind: EmailKind = "work"
    primary: bool = False

    @field_validator("address")
    @classmethod
    def _looks_like_email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"'{value}' is not an email address")
        return value


class PhoneIn(StrictModel):
    id: uuid.UUID | None = None
    number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=50)]
    kind: PhoneKind = "work"
    primary: bool = False


class AddressIn(StrictModel):
    id: uuid.UUID | None = None
    kind: AddressKind = "work"
    street: Line | None = None
    city: Line | None = None
    region: Line | None = None
    postal_code: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] | None = None
    country: Line | None = None
    primary: bool = False


class ContactFields(StrictModel):
    title: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] | None = None
    first_name: Name | None = None
    middle_name: Name | None = None
    last_name: Name | None = None
    company_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)] | None
    ) = None
    emails: list[EmailIn] | None = Field(default=None, max_length=50)
    phones: list[PhoneIn] | None = Field(default=None, max_length=50)
    addresses: list[AddressIn] | None = Field(default=None, max_length=50)
    party_types: list[PartyType] | None = None
    notes: Annotated[str, StringConstraints(max_length=20000)] | None = None
    mastered_by: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)] | None
    ) = Field(default=None, description="Set when another system masters this record; integration role only.")
    external_ref: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        default=None, description="The record's id in the system that masters it."
    )


class ContactCreate(ContactFields):
    kind: ContactKind


class ContactUpdate(ContactFields):
    """Only the fields sent change; a list sent replaces the whole list (items keep ids they carry)."""


class EmailOut(BaseModel):
    id: uuid.UUID
    address: str
    kind: str
    primary: bool


class PhoneOut(BaseModel):
    id: uuid.UUID
    number: str
    kind: str
    primary: bool


class AddressOut(BaseModel):
    id: uuid.UUID
    kind: str
    street: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None
    primary: bool


class ContactOut(BaseModel):
    id: uuid.UUID
    etag: str
    kind: str
    display_name: str
    title: str | None
    first_name: str | None
    middle_name: str | None
    last_name: str | None
    company_name: str | None
    emails: list[EmailOut]
    phones: list[PhoneOut]
    addresses: list[AddressOut]
    party_types: list[str]
    notes: str | None
    mastered_by: str | None
    external_ref: str | None
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, c: Contact) -> ContactOut:
        return cls(
            id=c.id,
            etag=etag_for(c.id, c.version),
            kind=c.kind,
            display_name=display_name(c),
            title=c.title,
            first_name=c.first_name,
            middle_name=c.middle_name,
            last_name=c.last_name,
            company_name=c.company_name,
            emails=[
                EmailOut(id=e.id, address=e.address, kind=e.kind, primary=e.is_primary) for e in c.emails
            ],
            phones=[PhoneOut(id=p.id, number=p.number, kind=p.kind, primary=p.is_primary) for p in c.phones],
            addresses=[
                AddressOut(
                    id=a.id,
                    kind=a.kind,
                    street=a.street,
                    city=a.city,
                    region=a.region,
                    postal_code=a.postal_code,
                    country=a.country,
                    primary=a.is_primary,
                )
                for a in c.addresses
            ],
            party_types=sorted(p.party_type for p in c.party_types),
            notes=c.notes,
            mastered_by=c.mastered_by,
            external_ref=c.external_ref,
            archived_at=c.archived_at,
            created_at=c.created_at,
            updated_at=c.updated_at,
        )


def display_name(c: Contact) -> str:
    if c.kind == "company":
        return c.company_name or ""
    return " ".join(p for p in (c.first_name, c.middle_name, c.last_name) if p)

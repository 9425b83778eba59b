"""All SQL for contacts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session, selectinload

from casebridge.models import Contact, ContactEmail, ContactPartyType

_LOAD = (
    selectinload(Contact.emails),
    selectinload(Contact.phones),
    selectinload(Contact.addresses),
    selectinload(Contact.party_types),
)
ORDER_COLUMNS = {
    "name": Contact.sort_name,
    "created_at": Contact.created_at,
    "updated_at": Contact.updated_at,
}


def get(session: Session, contact_id: uuid.UUID, *, for_update: bool = False) -> Contact | None:
    stmt = select(Contact).where(Contact.id == contact_id).options(*_LOAD)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def exists_active(session: Session, contact_id: uuid.UUID) -> bool:
    return bool(
        session.scalar(select(exists().where(Contact.id == contact_id, Contact.archived_at.is_(None))))
    )


def list_query(
    *,
    kind: str | None,
    party_type: str | None,
    q: str | None,
    email: str | None,
    mastered_by: str | None,
    updated_since: datetime | None,
    include_archived: bool,
) -> Select[Contact]:
    stmt = select(Contact).options(*_LOAD)
    if not include_archived:
        stmt = stmt.where(Contact.archived_at.is_(None))
    if kind:
        stmt = stmt.where(Contact.kind == kind)
    if party_type:
        stmt = stmt.where(
            exists().where(
                ContactPartyType.contact_id == Contact.id, ContactPartyType.party_type == party_type
            )
        )
    if q:
        stmt = stmt.where(
            or_(
                Contact.sort_name.icontains(q, autoescape=True),
                exists().where(
                    ContactEmail.contact_id == Contact.id, ContactEmail.address.icontains(q, autoescape=True)
                ),
            )
        )
    if email:
        stmt = stmt.where(
            exists().where(
                ContactEmail.contact_id == Contact.id, func.lower(ContactEmail.address) == email.lower()
            )
        )
    if mastered_by:
        stmt = stmt.where(Contact.mastered_by == mastered_by)
    if updated_since:
        stmt = stmt.where(Contact.updated_at >= updated_since)
    return stmt

"""All SQL for matters."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from casebridge.models import Matter

ORDER_COLUMNS = {
    "number": Matter.number,
    "created_at": Matter.created_at,
    "updated_at": Matter.updated_at,
    "title": Matter.title,
}


def get(session: Session, matter_id: uuid.UUID, *, for_update: bool = False) -> Matter | None:
    stmt = select(Matter).where(Matter.id == matter_id).options(selectinload(Matter.participants))
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def exists_active(session: Session, matter_id: uuid.UUID) -> bool:
    return bool(session.scalar(select(exists().where(Matter.id == matter_id, Matter.archived_at.is_(None)))))


def display_number_taken(session: Session, display_number: str, other_than: uuid.UUID | None = None) -> bool:
    cond = Matter.display_number == display_number
    if other_than is not None:
        cond = cond & (Matter.id != other_than)
    return bool(session.scalar(select(exists().where(cond))))


def list_query(
    *,
    status: str | None,
    client_id: uuid.UUID | None,
    practice_area: str | None,
    responsible_user_id: uuid.UUID | None,
    q: str | None,
    updated_since: datetime | None,
    include_archived: bool,
) -> Select[Matter]:
    stmt = select(Matter).options(selectinload(Matter.participants))
    if not include_archived:
        stmt = stmt.where(Matter.archived_at.is_(None))
    if status:
        stmt = stmt.where(Matter.status == status)
    if client_id:
        stmt = stmt.where(Matter.client_id == client_id)
    if practice_area:
        stmt = stmt.where(Matter.practice_area == practice_area)
    if responsible_user_id:
        stmt = stmt.where(Matter.responsible_user_id == responsible_user_id)
    if q:
        stmt = stmt.where(
            or_(
                Matter.title.icontains(q, autoescape=True),
                Matter.display_number.icontains(q, autoescape=True),
            )
        )
    if updated_since:
        stmt = stmt.where(Matter.updated_at >= updated_since)
    return stmt


def display_number_of_client(session: Session, contact_id: uuid.UUID) -> str | None:
    """The display number of a live matter whose client this contact is (None if there is none)."""
    return session.scalar(
        select(Matter.display_number)
        .where(Matter.client_id == contact_id, Matter.archived_at.is_(None))
        .order_by(Matter.number)
        .limit(1)
    )

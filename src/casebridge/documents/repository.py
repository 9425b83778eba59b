"""All SQL for documents."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, selectinload

from casebridge.models import Document, Matter

_LOAD = (selectinload(Document.versions),)
ORDER_COLUMNS = {
    "name": Document.name,
    "created_at": Document.created_at,
    "updated_at": Document.updated_at,
}


def get(session: Session, document_id: uuid.UUID, *, for_update: bool = False) -> Document | None:
    stmt = select(Document).where(Document.id == document_id).options(*_LOAD)
    if for_update:
        stmt = stmt.with_for_update(of=Document)
    return session.scalar(stmt)


def matter_archived_at(session: Session, matter_id: uuid.UUID) -> tuple[bool, datetime | None]:
    """(whether the matter exists, its archived_at)."""
    row = session.execute(select(Matter.archived_at).where(Matter.id == matter_id)).first()
    return (False, None) if row is None else (True, row[0])


def list_query(
    *,
    matter_id: uuid.UUID | None,
    folder_path: str | None,
    recursive: bool,
    q: str | None,
    updated_since: datetime | None,
    include_deleted: bool,
    deleted_only: bool,
) -> Select[Document]:
    stmt = select(Document).options(*_LOAD)
    if deleted_only:
        stmt = stmt.where(Document.deleted_at.is_not(None))
    elif not include_deleted:
        stmt = stmt.where(Document.deleted_at.is_(None))
    if matter_id:
        stmt = stmt.where(Document.matter_id == matter_id)
    if folder_path is not None:
        if not recursive:
            stmt = stmt.where(Document.folder_path == folder_path)
        elif folder_path:
            stmt = stmt.where(
                or_(
                    Document.folder_path == folder_path,
                    Document.folder_path.startswith(folder_path + "/", autoescape=True),
                )
            )
    if q:
        stmt = stmt.where(Document.name.icontains(q, autoescape=True))
    if updated_since:
        stmt = stmt.where(Document.updated_at >= updated_since)
    return stmt


def trashed_before(session: Session, cutoff: datetime, limit: int) -> list[Document]:
    stmt = (
        select(Document)
        .where(Document.deleted_at.is_not(None), Document.deleted_at < cutoff)
        .order_by(Document.deleted_at, Document.id)
        .limit(limit)
        .options(*_LOAD)
    )
    return list(session.scalars(stmt))

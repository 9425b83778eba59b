"""All SQL for users."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from casebridge.models import User

ORDER_COLUMNS = {"name": User.name, "created_at": User.created_at, "updated_at": User.updated_at}


def get(session: Session, user_id: uuid.UUID) -> User | None:
    return session.get(User, user_id)


def email_taken(session: Session, email: str, *, other_than: uuid.UUID | None = None) -> bool:
    cond = User.email == email
    if other_than is not None:
        cond = cond & (User.id != other_than)
    return bool(session.scalar(select(exists().where(cond))))


def list_query(*, active: bool | None) -> Select[User]:
    stmt = select(User)
    if active is not None:
        stmt = stmt.where(User.active.is_(active))
    return stmt

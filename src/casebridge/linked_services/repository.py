"""All SQL for linked services."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from casebridge.models import LinkedService

ORDER_COLUMNS = {
    "name": LinkedService.name,
    "created_at": LinkedService.created_at,
    "updated_at": LinkedService.updated_at,
}


def by_name(session: Session, name: str) -> LinkedService | None:
    return session.scalar(select(LinkedService).where(LinkedService.name == name))


def names(session: Session) -> set[str]:
    return set(session.scalars(select(LinkedService.name)))


def list_query() -> Select[LinkedService]:
    return select(LinkedService)

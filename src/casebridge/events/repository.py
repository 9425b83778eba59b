"""Reading the outbox."""

from __future__ import annotations

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from casebridge.models import Event


def _type_filter(stmt: Select[Event], types: list[str]) -> Select[Event]:
    conds = []
    for t in types:
        if t.endswith(".*"):
            conds.append(Event.type.startswith(t[:-1], autoescape=True))
        else:
            conds.append(Event.type == t)
    return stmt.where(or_(*conds))


def list_events(
    session: Session,
    *,
    after: int,
    limit: int,
    types: list[str] | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
) -> list[Event]:
    stmt = select(Event).where(Event.id > after)
    if types:
        stmt = _type_filter(stmt, types)
    if entity_type:
        stmt = stmt.where(Event.entity_type == entity_type)
    if entity_id:
        stmt = stmt.where(Event.entity_id == entity_id)
    return list(session.scalars(stmt.order_by(Event.id).limit(limit)))

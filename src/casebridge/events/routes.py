"""GET /api/v1/events: the outbox, paged in commit order; and the history helper every entity uses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from casebridge.events.repository import list_events
from casebridge.events.schemas import EventOut, EventPage
from casebridge.kit.context import ALL_ROLES
from casebridge.kit.deps import Require, SessionDep
from casebridge.kit.pagination import DEFAULT_LIMIT, LimitQuery
from casebridge.kit.uow import ApiRoute
from casebridge.models import Event

router = APIRouter(prefix="/events", tags=["events"], route_class=ApiRoute)

AfterQuery = Annotated[int, Query(ge=0, description="Return events with an id greater than this.")]


def history_page(session: Session, entity_type: str, entity_id: object, after: int, limit: int) -> EventPage:
    rows = list_events(
        session, after=after, limit=limit + 1, entity_type=entity_type, entity_id=str(entity_id)
    )
    return _page(rows, limit)


def _page(rows: list[Event], limit: int) -> EventPage:
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(data=[EventOut.of(r) for r in rows], next_after=rows[-1].id if more and rows else None)


@router.get("", dependencies=[Depends(Require(*ALL_ROLES))])
def list_business_events(
    session: SessionDep,
    after: AfterQuery = 0,
    limit: LimitQuery = DEFAULT_LIMIT,
    type: Annotated[
        list[str] | None,
        Query(description="Event types to include; repeatable; `matter.*` matches a prefix."),
    ] = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
) -> EventPage:
    """Business events in commit order, for consumers that keep their own cursor."""
    rows = list_events(
        session, after=after, limit=limit + 1, types=type, entity_type=entity_type, entity_id=entity_id
    )
    return _page(rows, limit)

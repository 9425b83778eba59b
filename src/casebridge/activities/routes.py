"""/api/v1/activities"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from casebridge.activities import repository, service
from casebridge.activities.schemas import (
    ActivityCreate,
    ActivityKind,
    ActivityOut,
    ActivityState,
    ActivityUpdate,
    BillIn,
    RejectIn,
    TotalsOut,
)
from casebridge.events.routes import AfterQuery, history_page
from casebridge.events.schemas import EventPage
from casebridge.kit.context import ALL_ROLES, WRITERS
from casebridge.kit.deps import PrincipalDep, Require, SessionDep
from casebridge.kit.etag import check_if_match, etag_for
from casebridge.kit.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    Page,
    UpdatedSinceQuery,
    order_options,
    paginate,
)
from casebridge.kit.problems import field_error, not_found, validation
from casebridge.kit.responses import conditional, created
from casebridge.kit.uow import ApiRoute
from casebridge.models import Activity

router = APIRouter(prefix="/activities", tags=["activities"], route_class=ApiRoute)
READ = [Depends(Require(*ALL_ROLES))]
WRITE = [Depends(Require(*WRITERS))]
APPROVE = [Depends(Require(*service.APPROVERS))]

DateFromQuery = Annotated[date | None, Query(description="Only activities dated on or after this day.")]
DateToQuery = Annotated[date | None, Query(description="Only activities dated on or before this day.")]


def _filters(
    matter_id: uuid.UUID | None = None,
    user_id: Annotated[uuid.UUID | None, Query(description="The fee earner.")] = None,
    kind: ActivityKind | None = None,
    state: ActivityState | None = None,
    date_from: DateFromQuery = None,
    date_to: DateToQuery = None,
    updated_since: UpdatedSinceQuery = None,
) -> repository.Filters:
    if date_from is not None and date_to is not None and date_from > date_to:
        raise validation([field_error("query.date_to", "date_to is before date_from", "date_range")])
    return repository.Filters(
        matter_id=matter_id,
        user_id=user_id,
        kind=kind,
        state=state,
        date_from=date_from,
        date_to=date_to,
        updated_since=updated_since,
    )


FiltersDep = Annotated[repository.Filters, Depends(_filters)]


def _respond(response: Response, activity: Activity) -> ActivityOut:
    out = ActivityOut.of(activity)
    response.headers["ETag"] = out.etag
    return out


@router.get("", dependencies=READ)
def list_activities(
    session: SessionDep,
    filters: FiltersDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: Annotated[str, Query(description=order_options(*repository.ORDER_COLUMNS))] = "date",
) -> Page[ActivityOut]:
    page = paginate(
        session,
        repository.list_query(filters),
        columns=repository.ORDER_COLUMNS,
        id_column=Activity.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[ActivityOut.of(a) for a in page.rows], next_cursor=page.next_cursor)


@router.post("", dependencies=WRITE, status_code=201)
def create_activity(
    request: Request, response: Response, session: SessionDep, principal: PrincipalDep, body: ActivityCreate
) -> ActivityOut:
    """Record a time entry (`kind: time`; hourly with `duration_seconds` and `rate`, or `flat_fee`) or
    an expense (`kind: expense`). It starts as a draft. `user_id` (the fee earner) defaults to the user
    the API token belongs to. Not allowed on a closed or archived matter (409)."""
    out = ActivityOut.of(service.create(session, principal, body))
    created(request, response, out.etag, f"/api/v1/activities/{out.id}")
    return out


@router.get("/totals", dependencies=READ)
def activity_totals(session: SessionDep, filters: FiltersDep) -> TotalsOut:
    """Per-currency totals of the matching activities: sums of the rounded line totals, so they equal
    the sum of the `total` of the activities the list returns."""
    return service.totals(session, filters)


@router.get("/{activity_id}", dependencies=READ, response_model=ActivityOut)
def get_activity(
    request: Request, response: Response, session: SessionDep, activity_id: uuid.UUID
) -> ActivityOut | Response:
    activity = service.get_or_404(session, activity_id)
    return conditional(request, response, etag_for(activity.id, activity.version)) or ActivityOut.of(activity)


@router.patch("/{activity_id}", dependencies=WRITE)
def update_activity(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    activity_id: uuid.UUID,
    body: ActivityUpdate,
) -> ActivityOut:
    """Change a draft. Submitted and approved entries are locked (409) except for admins; billed ones are
    immutable. The total is recomputed."""
    activity = service.get_or_404(session, activity_id)
    check_if_match(request, etag_for(activity.id, activity.version))
    return _respond(response, service.update(session, principal, activity, body))


@router.delete("/{activity_id}", dependencies=WRITE, status_code=204)
def delete_activity(
    request: Request, session: SessionDep, principal: PrincipalDep, activity_id: uuid.UUID
) -> Response:
    """Delete a draft outright (its history stays readable). Submitted or approved: admins only; billed:
    never (409)."""
    activity = service.get_or_404(session, activity_id)
    check_if_match(request, etag_for(activity.id, activity.version))
    service.delete(session, principal, activity)
    return Response(status_code=204)


@router.post("/{activity_id}/submit", dependencies=WRITE)
def submit_activity(
    request: Request, response: Response, session: SessionDep, activity_id: uuid.UUID
) -> ActivityOut:
    """draft -> submitted; the entry is then locked against edits except by an admin."""
    activity = service.get_or_404(session, activity_id)
    check_if_match(request, etag_for(activity.id, activity.version))
    return _respond(response, service.transition(session, activity, "submit"))


@router.post("/{activity_id}/approve", dependencies=APPROVE)
def approve_activity(
    request: Request, response: Response, session: SessionDep, activity_id: uuid.UUID
) -> ActivityOut:
    """submitted -> approved (admin or integration)."""
    activity = service.get_or_404(session, activity_id)
    check_if_match(request, etag_for(activity.id, activity.version))
    return _respond(response, service.transition(session, activity, "approve"))


@router.post("/{activity_id}/reject", dependencies=APPROVE)
def reject_activity(
    request: Request, response: Response, session: SessionDep, activity_id: uuid.UUID, body: RejectIn
) -> ActivityOut:
    """submitted or approved -> draft, with a reason (admin or integration)."""
    activity = service.get_or_404(session, activity_id)
    check_if_match(request, etag_for(activity.id, activity.version))
    return _respond(response, service.transition(session, activity, "reject", reason=body.reason))


@router.post("/{activity_id}/bill", dependencies=APPROVE)
def bill_activity(
    request: Request, response: Response, session: SessionDep, activity_id: uuid.UUID, body: BillIn
) -> ActivityOut:
    """approved -> billed, naming the bill (admin or integration). A billed entry is immutable."""
    activity = service.get_or_404(session, activity_id)
    check_if_match(request, etag_for(activity.id, activity.version))
    return _respond(
        response, service.transition(session, activity, "bill", bill_reference=body.bill_reference)
    )


@router.get("/{activity_id}/history", dependencies=READ)
def activity_history(
    session: SessionDep, activity_id: uuid.UUID, after: AfterQuery = 0, limit: LimitQuery = DEFAULT_LIMIT
) -> EventPage:
    """The activity's events, oldest first; still readable after the activity is deleted."""
    if not service.has_history(session, activity_id):
        raise not_found("activity", activity_id)
    return history_page(session, service.ENTITY, activity_id, after, limit)

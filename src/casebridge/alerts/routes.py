"""/api/v1/alerts, and a matter's notes and alerts under /api/v1/matters/{matter_id}/…

Alerts are raised by workflows and listed per matter; any writer may acknowledge one. Notes are entries
in a matter's history written by people (any writer) or by workflows.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from casebridge.alerts import repository, service
from casebridge.alerts.schemas import AlertOut, NoteIn, NoteOut, Severity
from casebridge.kit.context import ALL_ROLES, WRITERS
from casebridge.kit.deps import PrincipalDep, Require, SessionDep
from casebridge.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, order_options, paginate
from casebridge.kit.problems import not_found
from casebridge.kit.uow import ApiRoute
from casebridge.models import Alert, Matter, MatterNote

router = APIRouter(prefix="/alerts", tags=["alerts"], route_class=ApiRoute)
# Registered in app.api_routers() beside the matters router: /matters/{matter_id}/notes and /alerts.
matter_router = APIRouter(prefix="/matters", tags=["alerts"], route_class=ApiRoute)
READ = [Depends(Require(*ALL_ROLES))]
WRITE = [Depends(Require(*WRITERS))]

AlertOrder = Annotated[str, Query(description=order_options(*repository.ALERT_ORDER))]
NoteOrder = Annotated[str, Query(description=order_options(*repository.NOTE_ORDER))]
AcknowledgedQuery = Annotated[
    bool | None, Query(description="true: only acknowledged alerts; false: only open ones.")
]


def _alert_page(
    session: SessionDep,
    matter_id: uuid.UUID | None,
    acknowledged: bool | None,
    severity: str | None,
    order: str,
    limit: int,
    cursor: str | None,
) -> Page[AlertOut]:
    page = paginate(
        session,
        repository.alerts_query(matter_id=matter_id, acknowledged=acknowledged, severity=severity),
        columns=repository.ALERT_ORDER,
        id_column=Alert.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[AlertOut.of(a) for a in page.rows], next_cursor=page.next_cursor)


@router.get("", dependencies=READ)
def list_alerts(
    session: SessionDep,
    matter_id: uuid.UUID | None = None,
    acknowledged: AcknowledgedQuery = None,
    severity: Severity | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: AlertOrder = "-created_at",
) -> Page[AlertOut]:
    """Alerts, newest first by default."""
    return _alert_page(session, matter_id, acknowledged, severity, order, limit, cursor)


@router.get("/{alert_id}", dependencies=READ)
def get_alert(session: SessionDep, alert_id: uuid.UUID) -> AlertOut:
    return AlertOut.of(service.get_alert_or_404(session, alert_id))


@router.post("/{alert_id}/acknowledge", dependencies=WRITE)
def acknowledge_alert(session: SessionDep, alert_id: uuid.UUID) -> AlertOut:
    """Mark the alert as seen (idempotent). Raises `alert.acknowledged` naming who did it."""
    return AlertOut.of(service.acknowledge(session, service.get_alert_or_404(session, alert_id)))


def _matter_exists(session: SessionDep, matter_id: uuid.UUID) -> None:
    if session.get(Matter, matter_id) is None:
        raise not_found("matter", matter_id)


@matter_router.get("/{matter_id}/notes", dependencies=READ)
def list_matter_notes(
    session: SessionDep,
    matter_id: uuid.UUID,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: NoteOrder = "created_at",
) -> Page[NoteOut]:
    """The matter's notes, oldest first by default."""
    _matter_exists(session, matter_id)
    page = paginate(
        session,
        repository.notes_query(matter_id),
        columns=repository.NOTE_ORDER,
        id_column=MatterNote.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[NoteOut.of(n) for n in page.rows], next_cursor=page.next_cursor)


@matter_router.post("/{matter_id}/notes", dependencies=WRITE, status_code=201)
def add_matter_note(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    matter_id: uuid.UUID,
    body: NoteIn,
) -> NoteOut:
    """Add a note to the matter's history (refused on an archived matter, 409). Raises
    `matter.note_added`."""
    note = service.add_note(session, matter_id, body.body, principal.name)
    response.headers["Location"] = str(request.base_url).rstrip("/") + f"/api/v1/matters/{matter_id}/notes"
    return NoteOut.of(note)


@matter_router.get("/{matter_id}/alerts", dependencies=READ)
def list_matter_alerts(
    session: SessionDep,
    matter_id: uuid.UUID,
    acknowledged: AcknowledgedQuery = None,
    severity: Severity | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: AlertOrder = "-created_at",
) -> Page[AlertOut]:
    """The matter's alerts, newest first by default."""
    _matter_exists(session, matter_id)
    return _alert_page(session, matter_id, acknowledged, severity, order, limit, cursor)

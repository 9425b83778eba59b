"""/api/v1/matters and /api/v1/settings/matter-numbering"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from casebridge.events.routes import AfterQuery, history_page
from casebridge.events.schemas import EventPage
from casebridge.kit.context import ALL_ROLES, WRITERS, Role
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
from casebridge.kit.responses import conditional, created
from casebridge.kit.uow import ApiRoute
from casebridge.matters import numbering, repository, service
from casebridge.matters.schemas import (
    MatterCreate,
    MatterOut,
    MatterStatus,
    MatterUpdate,
    NumberingIn,
    NumberingOut,
)
from casebridge.models import Matter
from casebridge.sync import service as sync_service

router = APIRouter(prefix="/matters", tags=["matters"], route_class=ApiRoute)
settings_router = APIRouter(prefix="/settings", tags=["settings"], route_class=ApiRoute)
READ = [Depends(Require(*ALL_ROLES))]
WRITE = [Depends(Require(*WRITERS))]
ADMIN = [Depends(Require(Role.ADMIN))]


@router.get("", dependencies=READ)
def list_matters(
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: Annotated[str, Query(description=order_options(*repository.ORDER_COLUMNS))] = "number",
    status: MatterStatus | None = None,
    client_id: uuid.UUID | None = None,
    practice_area: str | None = None,
    responsible_user_id: uuid.UUID | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Matches title and display number.")] = None,
    updated_since: UpdatedSinceQuery = None,
    include_archived: bool = False,
) -> Page[MatterOut]:
    stmt = repository.list_query(
        status=status,
        client_id=client_id,
        practice_area=practice_area,
        responsible_user_id=responsible_user_id,
        q=q,
        updated_since=updated_since,
        include_archived=include_archived,
    )
    page = paginate(
        session,
        stmt,
        columns=repository.ORDER_COLUMNS,
        id_column=Matter.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[MatterOut.of(m) for m in page.rows], next_cursor=page.next_cursor)


@router.post("", dependencies=WRITE, status_code=201)
def create_matter(
    request: Request, response: Response, session: SessionDep, principal: PrincipalDep, body: MatterCreate
) -> MatterOut:
    """Open a matter. It takes the next firm-wide number and a display number from the numbering scheme,
    unless an integration supplies `display_number` (the PMS owns numbering). When Casebridge is
    connected to Clio, the matter is created there and takes Clio's number (showing `PENDING-<number>`
    until then); its client must then be synced with Clio (automatically, unless the connection's
    `auto_sync_clients` is off)."""
    sync_service.check_matter_client(session, body.client_id)
    numbered_elsewhere = sync_service.live_connection(session) is not None
    out = MatterOut.of(service.create(session, principal, body, numbered_elsewhere=numbered_elsewhere))
    created(request, response, out.etag, f"/api/v1/matters/{out.id}")
    return out


@router.get("/{matter_id}", dependencies=READ, response_model=MatterOut)
def get_matter(
    request: Request, response: Response, session: SessionDep, matter_id: uuid.UUID
) -> MatterOut | Response:
    matter = service.get_or_404(session, matter_id)
    return conditional(request, response, etag_for(matter.id, matter.version)) or MatterOut.of(matter)


@router.patch("/{matter_id}", dependencies=WRITE)
def update_matter(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    matter_id: uuid.UUID,
    body: MatterUpdate,
) -> MatterOut:
    """Change a matter. Changing `status` sets its date (pending_date, close_date) unless you send one."""
    matter = service.get_or_404(session, matter_id)
    check_if_match(request, etag_for(matter.id, matter.version))
    if body.client_id is not None and body.client_id != matter.client_id:
        sync_service.check_matter_client(session, body.client_id)
    out = MatterOut.of(service.update(session, principal, matter, body))
    response.headers["ETag"] = out.etag
    return out


@router.delete("/{matter_id}", dependencies=WRITE)
def archive_matter(
    request: Request, response: Response, session: SessionDep, matter_id: uuid.UUID
) -> MatterOut:
    """Archive the matter: hidden from lists by default; its documents and activities are kept."""
    matter = service.get_or_404(session, matter_id)
    check_if_match(request, etag_for(matter.id, matter.version))
    out = MatterOut.of(service.archive(session, matter))
    response.headers["ETag"] = out.etag
    return out


@router.post("/{matter_id}/restore", dependencies=WRITE)
def restore_matter(
    request: Request, response: Response, session: SessionDep, matter_id: uuid.UUID
) -> MatterOut:
    matter = service.get_or_404(session, matter_id)
    check_if_match(request, etag_for(matter.id, matter.version))
    out = MatterOut.of(service.restore(session, matter))
    response.headers["ETag"] = out.etag
    return out


@router.get("/{matter_id}/history", dependencies=READ)
def matter_history(
    session: SessionDep, matter_id: uuid.UUID, after: AfterQuery = 0, limit: LimitQuery = DEFAULT_LIMIT
) -> EventPage:
    service.get_or_404(session, matter_id)
    return history_page(session, service.ENTITY, matter_id, after, limit)


def _numbering_out(session: SessionDep, scheme: str) -> NumberingOut:
    return NumberingOut(
        scheme=scheme,
        fields=numbering.FIELDS,
        next_number=numbering.current_number(session) + 1,
        example=numbering.render(scheme, numbering.SAMPLE),
    )


@settings_router.get("/matter-numbering", dependencies=READ)
def get_matter_numbering(session: SessionDep) -> NumberingOut:
    return _numbering_out(session, numbering.get_settings(session).scheme)


@settings_router.put("/matter-numbering", dependencies=ADMIN)
def set_matter_numbering(session: SessionDep, body: NumberingIn) -> NumberingOut:
    """Set the display-number scheme for new matters (existing numbers never change)."""
    return _numbering_out(session, service.set_numbering(session, body.scheme).scheme)

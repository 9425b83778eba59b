"""/api/v1/linked-services: named external endpoints with their auth (admin to change; admin and
integration to read). Secrets are write-only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from casebridge.kit.context import Role
from casebridge.kit.deps import ContextDep, Require, SessionDep
from casebridge.kit.etag import check_if_match, etag_for
from casebridge.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, order_options, paginate
from casebridge.kit.responses import conditional, created
from casebridge.kit.uow import ApiRoute
from casebridge.linked_services import repository, service
from casebridge.linked_services.schemas import (
    ConnectionTestIn,
    ConnectionTestOut,
    LinkedServiceCreate,
    LinkedServiceOut,
    LinkedServiceUpdate,
)
from casebridge.models import LinkedService

router = APIRouter(prefix="/linked-services", tags=["linked-services"], route_class=ApiRoute)
READ = [Depends(Require(Role.ADMIN, Role.INTEGRATION))]
ADMIN = [Depends(Require(Role.ADMIN))]


@router.get("", dependencies=READ)
def list_linked_services(
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: Annotated[str, Query(description=order_options(*repository.ORDER_COLUMNS))] = "name",
) -> Page[LinkedServiceOut]:
    page = paginate(
        session,
        repository.list_query(),
        columns=repository.ORDER_COLUMNS,
        id_column=LinkedService.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[LinkedServiceOut.of(s) for s in page.rows], next_cursor=page.next_cursor)


@router.post("", dependencies=ADMIN, status_code=201)
def create_linked_service(
    request: Request, response: Response, session: SessionDep, ctx: ContextDep, body: LinkedServiceCreate
) -> LinkedServiceOut:
    """Register an external endpoint. `secret` (API key, password or OAuth2 client secret) is encrypted
    with `CASEBRIDGE_SECRET_KEY` and never returned: responses show `has_secret`."""
    out = LinkedServiceOut.of(service.create(session, ctx.secrets, body))
    created(request, response, out.etag, f"/api/v1/linked-services/{out.name}")
    return out


@router.get("/{name}", dependencies=READ, response_model=LinkedServiceOut)
def get_linked_service(
    request: Request, response: Response, session: SessionDep, name: str
) -> LinkedServiceOut | Response:
    row = service.get_or_404(session, name)
    return conditional(request, response, etag_for(row.id, row.version)) or LinkedServiceOut.of(row)


@router.patch("/{name}", dependencies=ADMIN)
def update_linked_service(
    request: Request,
    response: Response,
    session: SessionDep,
    ctx: ContextDep,
    name: str,
    body: LinkedServiceUpdate,
) -> LinkedServiceOut:
    """Change a service. The stored secret is kept unless `secret` is sent. Renaming a service that a
    workflow uses is refused (409)."""
    row = service.get_or_404(session, name)
    check_if_match(request, etag_for(row.id, row.version))
    out = LinkedServiceOut.of(service.update(session, ctx.secrets, row, body))
    response.headers["ETag"] = out.etag
    return out


@router.delete("/{name}", dependencies=ADMIN, status_code=204)
def delete_linked_service(request: Request, session: SessionDep, name: str) -> Response:
    """Delete a service; refused (409) while a workflow uses it."""
    row = service.get_or_404(session, name)
    check_if_match(request, etag_for(row.id, row.version))
    service.delete(session, row)
    return Response(status_code=204)


@router.post("/{name}/test", dependencies=ADMIN)
def check_linked_service(
    session: SessionDep, ctx: ContextDep, name: str, body: ConnectionTestIn | None = None
) -> ConnectionTestOut:
    """Send one request (default `GET /`) with the service's auth and report the status. Nothing is
    stored; secrets are redacted from the error."""
    cfg = service.config(service.get_or_404(session, name), ctx.secrets)
    session.rollback()  # hold no transaction (nor SQLite's write lock) while the service answers
    return service.check_connection(cfg, body or ConnectionTestIn())

"""/api/v1/users"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from casebridge.events.routes import AfterQuery, history_page
from casebridge.events.schemas import EventPage
from casebridge.kit.context import ALL_ROLES, Role
from casebridge.kit.deps import Require, SessionDep
from casebridge.kit.etag import check_if_match, etag_for
from casebridge.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, order_options, paginate
from casebridge.kit.responses import conditional, created
from casebridge.kit.uow import ApiRoute
from casebridge.models import User
from casebridge.users import repository, service
from casebridge.users.schemas import UserCreate, UserOut, UserUpdate

router = APIRouter(prefix="/users", tags=["users"], route_class=ApiRoute)
READ = [Depends(Require(*ALL_ROLES))]
ADMIN = [Depends(Require(Role.ADMIN, Role.INTEGRATION))]


@router.get("", dependencies=READ)
def list_users(
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: Annotated[str, Query(description=order_options(*repository.ORDER_COLUMNS))] = "name",
    active: bool | None = None,
) -> Page[UserOut]:
    page = paginate(
        session,
        repository.list_query(active=active),
        columns=repository.ORDER_COLUMNS,
        id_column=User.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[UserOut.of(u) for u in page.rows], next_cursor=page.next_cursor)


@router.post("", dependencies=ADMIN, status_code=201)
def create_user(request: Request, response: Response, session: SessionDep, body: UserCreate) -> UserOut:
    out = UserOut.of(service.create(session, body))
    created(request, response, out.etag, f"/api/v1/users/{out.id}")
    return out


@router.get("/{user_id}", dependencies=READ, response_model=UserOut)
def get_user(
    request: Request, response: Response, session: SessionDep, user_id: uuid.UUID
) -> UserOut | Response:
    user = service.get_or_404(session, user_id)
    return conditional(request, response, etag_for(user.id, user.version)) or UserOut.of(user)


@router.patch("/{user_id}", dependencies=ADMIN)
def update_user(
    request: Request, response: Response, session: SessionDep, user_id: uuid.UUID, body: UserUpdate
) -> UserOut:
    """Change a user; deactivate with `{"active": false}` (users are never deleted)."""
    user = service.get_or_404(session, user_id)
    check_if_match(request, etag_for(user.id, user.version))
    out = UserOut.of(service.update(session, user, body))
    response.headers["ETag"] = out.etag
    return out


@router.get("/{user_id}/history", dependencies=READ)
def user_history(
    session: SessionDep, user_id: uuid.UUID, after: AfterQuery = 0, limit: LimitQuery = DEFAULT_LIMIT
) -> EventPage:
    service.get_or_404(session, user_id)
    return history_page(session, service.ENTITY, user_id, after, limit)

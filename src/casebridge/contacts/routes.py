"""/api/v1/contacts"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from casebridge.contacts import repository, service
from casebridge.contacts.schemas import ContactCreate, ContactKind, ContactOut, ContactUpdate, PartyType
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
from casebridge.kit.responses import conditional, created
from casebridge.kit.uow import ApiRoute
from casebridge.models import Contact

router = APIRouter(prefix="/contacts", tags=["contacts"], route_class=ApiRoute)
READ = [Depends(Require(*ALL_ROLES))]
WRITE = [Depends(Require(*WRITERS))]


@router.get("", dependencies=READ)
def list_contacts(
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: Annotated[str, Query(description=order_options(*repository.ORDER_COLUMNS))] = "name",
    kind: ContactKind | None = None,
    party_type: PartyType | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Matches names and email addresses.")] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    mastered_by: str | None = None,
    updated_since: UpdatedSinceQuery = None,
    include_archived: bool = False,
) -> Page[ContactOut]:
    stmt = repository.list_query(
        kind=kind,
        party_type=party_type,
        q=q,
        email=email,
        mastered_by=mastered_by,
        updated_since=updated_since,
        include_archived=include_archived,
    )
    page = paginate(
        session,
        stmt,
        columns=repository.ORDER_COLUMNS,
        id_column=Contact.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[ContactOut.of(c) for c in page.rows], next_cursor=page.next_cursor)


@router.post("", dependencies=WRITE, status_code=201)
def create_contact(
    request: Request, response: Response, session: SessionDep, principal: PrincipalDep, body: ContactCreate
) -> ContactOut:
    contact = service.create(session, principal, body)
    out = ContactOut.of(contact)
    created(request, response, out.etag, f"/api/v1/contacts/{contact.id}")
    return out


@router.get("/{contact_id}", dependencies=READ, response_model=ContactOut)
def get_contact(
    request: Request, response: Response, session: SessionDep, contact_id: uuid.UUID
) -> ContactOut | Response:
    contact = service.get_or_404(session, contact_id)
    etag = etag_for(contact.id, contact.version)
    return conditional(request, response, etag) or ContactOut.of(contact)


@router.patch("/{contact_id}", dependencies=WRITE)
def update_contact(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    contact_id: uuid.UUID,
    body: ContactUpdate,
) -> ContactOut:
    contact = service.get_or_404(session, contact_id)
    check_if_match(request, etag_for(contact.id, contact.version))
    out = ContactOut.of(service.update(session, principal, contact, body))
    response.headers["ETag"] = out.etag
    return out


@router.delete("/{contact_id}", dependencies=WRITE)
def archive_contact(
    request: Request, response: Response, session: SessionDep, principal: PrincipalDep, contact_id: uuid.UUID
) -> ContactOut:
    """Archive the contact: hidden from lists by default, kept for the matters that name it."""
    contact = service.get_or_404(session, contact_id)
    check_if_match(request, etag_for(contact.id, contact.version))
    out = ContactOut.of(service.archive(session, principal, contact))
    response.headers["ETag"] = out.etag
    return out


@router.post("/{contact_id}/restore", dependencies=WRITE)
def restore_contact(
    request: Request, response: Response, session: SessionDep, principal: PrincipalDep, contact_id: uuid.UUID
) -> ContactOut:
    contact = service.get_or_404(session, contact_id)
    check_if_match(request, etag_for(contact.id, contact.version))
    out = ContactOut.of(service.restore(session, principal, contact))
    response.headers["ETag"] = out.etag
    return out


@router.get("/{contact_id}/history", dependencies=READ)
def contact_history(
    session: SessionDep, contact_id: uuid.UUID, after: AfterQuery = 0, limit: LimitQuery = DEFAULT_LIMIT
) -> EventPage:
    service.get_or_404(session, contact_id)
    return history_page(session, service.ENTITY, contact_id, after, limit)

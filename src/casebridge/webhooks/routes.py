"""/api/v1/webhooks"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from casebridge.kit.context import Role
from casebridge.kit.deps import ContextDep, PrincipalDep, Require, SessionDep
from casebridge.kit.etag import check_if_match, etag_for
from casebridge.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, order_options, paginate
from casebridge.kit.responses import conditional, created
from casebridge.kit.uow import ApiRoute
from casebridge.models import Webhook, WebhookDelivery
from casebridge.webhooks import repository, service
from casebridge.webhooks.schemas import (
    DeliveryOut,
    RedeliverQueued,
    WebhookCreate,
    WebhookOut,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"], route_class=ApiRoute)
# Webhooks send the firm's data to URLs outside Casebridge: admins and integrations only.
MANAGE = [Depends(Require(Role.ADMIN, Role.INTEGRATION))]


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


@router.post("", dependencies=MANAGE, status_code=201)
def create_webhook(
    request: Request, response: Response, session: SessionDep, ctx: ContextDep, body: WebhookCreate
) -> WebhookWithSecret:
    """Subscribe a URL to events. The response carries the signing `secret`: it is shown only here."""
    webhook, secret = service.create(session, ctx.secrets, body)
    out = WebhookWithSecret.with_secret(webhook, secret)
    created(request, response, out.etag, f"/api/v1/webhooks/{webhook.id}")
    return out


@router.get("", dependencies=MANAGE)
def list_webhooks(
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: Annotated[str, Query(description=order_options(*repository.ORDER_COLUMNS))] = "created_at",
    active: bool | None = None,
) -> Page[WebhookOut]:
    page = paginate(
        session,
        repository.list_query(active=active),
        columns=repository.ORDER_COLUMNS,
        id_column=Webhook.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[WebhookOut.of(w) for w in page.rows], next_cursor=page.next_cursor)


@router.get("/{webhook_id}", dependencies=MANAGE, response_model=WebhookOut)
def get_webhook(
    request: Request, response: Response, session: SessionDep, webhook_id: uuid.UUID
) -> WebhookOut | Response:
    webhook = service.get_or_404(session, webhook_id)
    return conditional(request, response, etag_for(webhook.id, webhook.version)) or WebhookOut.of(webhook)


@router.patch("/{webhook_id}", dependencies=MANAGE)
def update_webhook(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
) -> WebhookOut:
    """Change the URL, event types, filter or description; `active: false` pauses deliveries (they
    wait), `active: true` re-enables a paused or disabled webhook and delivers what waited."""
    webhook = service.get_or_404(session, webhook_id)
    check_if_match(request, etag_for(webhook.id, webhook.version))
    out = WebhookOut.of(service.update(session, principal, webhook, body))
    response.headers["ETag"] = out.etag
    return out


@router.delete("/{webhook_id}", dependencies=MANAGE, status_code=204)
def delete_webhook(request: Request, session: SessionDep, webhook_id: uuid.UUID) -> Response:
    """Delete the webhook with its delivery log; deliveries still waiting are dropped."""
    webhook = service.get_or_404(session, webhook_id)
    check_if_match(request, etag_for(webhook.id, webhook.version))
    service.delete(session, webhook)
    return Response(status_code=204)


@router.post("/{webhook_id}/rotate-secret", dependencies=MANAGE)
def rotate_webhook_secret(
    request: Request, response: Response, session: SessionDep, ctx: ContextDep, webhook_id: uuid.UUID
) -> WebhookWithSecret:
    """Replace the signing secret. The new `secret` is shown only here and signs every delivery from now
    on; the old one stops at once (receivers should accept both while they switch)."""
    webhook = service.get_or_404(session, webhook_id)
    check_if_match(request, etag_for(webhook.id, webhook.version))
    secret = service.rotate_secret(session, ctx.secrets, webhook)
    out = WebhookWithSecret.with_secret(webhook, secret)
    response.headers["ETag"] = out.etag
    return out


@router.post("/{webhook_id}/ping", dependencies=MANAGE)
def ping_webhook(
    request: Request, session: SessionDep, ctx: ContextDep, principal: PrincipalDep, webhook_id: uuid.UUID
) -> DeliveryOut:
    """Send a signed `webhook.ping` now (also to a disabled webhook) and return the logged attempt."""
    return DeliveryOut.of(service.ping(ctx, session, principal, webhook_id, _request_id(request)))


@router.get("/{webhook_id}/deliveries", dependencies=MANAGE)
def list_webhook_deliveries(
    session: SessionDep,
    webhook_id: uuid.UUID,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    succeeded: bool | None = None,
    event_id: Annotated[int | None, Query(ge=0)] = None,
) -> Page[DeliveryOut]:
    """The delivery log, newest attempt first."""
    service.get_or_404(session, webhook_id)
    page = paginate(
        session,
        repository.deliveries_query(webhook_id, succeeded=succeeded, event_id=event_id),
        columns=repository.DELIVERY_ORDER,
        id_column=WebhookDelivery.id,
        order="-id",
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[DeliveryOut.of(d) for d in page.rows], next_cursor=page.next_cursor)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", dependencies=MANAGE)
def redeliver_webhook_delivery(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    principal: PrincipalDep,
    webhook_id: uuid.UUID,
    delivery_id: int,
) -> DeliveryOut:
    """Send that delivery's event again now, as a new attempt, and return the logged attempt."""
    row = service.redeliver(ctx, session, principal, webhook_id, delivery_id, _request_id(request))
    return DeliveryOut.of(row)


@router.post("/{webhook_id}/redeliver", dependencies=MANAGE, status_code=202)
def redeliver_failed_webhook_deliveries(
    session: SessionDep,
    webhook_id: uuid.UUID,
    since_event_id: Annotated[int, Query(ge=0, description="Resend failed events with this id or later.")],
) -> RedeliverQueued:
    """Queue again every delivery that gave up (after its last retry), from an event id on. They are
    sent in the background with fresh attempts; a resent event may arrive after newer events of its
    record (its id says it is older)."""
    webhook = service.get_or_404(session, webhook_id)
    return RedeliverQueued(queued=service.redeliver_failed(session, webhook, since_event_id))

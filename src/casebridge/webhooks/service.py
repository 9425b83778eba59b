"""Webhook rules: create with a one-time secret, change, pause and re-enable, delete, rotate the secret,
and the synchronous test ping and redelivery."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.events import diff, record_event
from casebridge.events.delivery import resume, subscribe
from casebridge.events.schemas import EventActor, EventOut
from casebridge.kit.context import AppContext, Principal
from casebridge.kit.crypto import SecretBox
from casebridge.kit.expressions import validate
from casebridge.kit.problems import Problem, field_error, not_found, validation
from casebridge.models import Event, EventSubscription, Webhook, WebhookDelivery
from casebridge.webhooks import repository, subscriber
from casebridge.webhooks.schemas import PING, WebhookCreate, WebhookUpdate, redact_url
from casebridge.webhooks.signing import new_secret

ENTITY = subscriber.ENTITY


def snapshot(webhook: Webhook) -> dict[str, Any]:
    """What events say about a webhook: never the secret; the URL without credentials or query
    (events are readable by every role, and receivers often carry a token in the URL)."""
    return {
        "url": redact_url(webhook.url),
        "description": webhook.description,
        "event_types": list(webhook.event_types),
        "filter": webhook.filter,
        "active": webhook.active,
        "disabled_reason": webhook.disabled_reason,
    }


def get_or_404(session: Session, webhook_id: uuid.UUID) -> Webhook:
    webhook = repository.get(session, webhook_id)
    if webhook is None:
        raise not_found("webhook", webhook_id)
    return webhook


def _check_filter(value: dict[str, Any] | None) -> None:
    if value is None:
        return
    errors = validate(value, "body.filter")
    if errors:
        raise validation(
            [field_error(e.path or "body.filter", e.message, "invalid_expression") for e in errors]
        )


def create(session: Session, secrets: SecretBox, data: WebhookCreate) -> tuple[Webhook, str]:
    """The new webhook and its secret (returned to the caller once, stored only encrypted)."""
    _check_filter(data.filter)
    secret = new_secret()
    webhook_id = uuid.uuid4()
    sub = subscribe(session, name=f"webhook:{webhook_id}", kind=subscriber.KIND, target_id=str(webhook_id))
    webhook = Webhook(
        id=webhook_id,
        url=data.url,
        description=data.description,
        event_types=list(data.event_types),
        filter=data.filter,
        secret_encrypted=secrets.encrypt(secret),
        active=True,
        consecutive_failures=0,
        subscription_id=sub.id,
    )
    session.add(webhook)
    session.flush()
    record_event(session, "webhook.created", ENTITY, webhook.id, diff({}, snapshot(webhook)))
    return webhook, secret


def _subscription(session: Session, webhook: Webhook) -> EventSubscription:
    sub = subscriber.subscription_for(session, webhook)
    if sub is None:  # lost (deleted by hand): a new one starts at the newest event
        sub = subscribe(
            session, name=f"webhook:{webhook.id}", kind=subscriber.KIND, target_id=str(webhook.id)
        )
        webhook.subscription_id = sub.id
    return sub


def update(session: Session, principal: Principal, webhook: Webhook, data: WebhookUpdate) -> Webhook:
    sent = data.model_fields_set
    if "filter" in sent:
        _check_filter(data.filter)
    before = snapshot(webhook)
    if "url" in sent and data.url is not None:
        webhook.url = data.url
    if "event_types" in sent and data.event_types is not None:
        webhook.event_types = list(data.event_types)
    if "filter" in sent:
        webhook.filter = data.filter
    if "description" in sent:
        webhook.description = data.description
    if "active" in sent and data.active is not None and data.active != webhook.active:
        sub = _subscription(session, webhook)
        if data.active:
            webhook.active = True
            webhook.disabled_reason = None
            webhook.disabled_at = None
            webhook.consecutive_failures = 0
            webhook.failing_since = None
            repository.reset_pending_attempts(session, sub.id)
            resume(session, sub)
        else:
            webhook.active = False
            webhook.disabled_at = utcnow()
            webhook.disabled_reason = f"paused by {principal.label}"
            sub.active = False
    session.flush()
    changes = diff(before, snapshot(webhook))
    if changes:
        record_event(session, "webhook.updated", ENTITY, webhook.id, changes)
    return webhook


def delete(session: Session, webhook: Webhook) -> None:
    """Remove the webhook, its delivery log, its subscription and the deliveries waiting in it."""
    before = snapshot(webhook)
    sub = subscriber.subscription_for(session, webhook)
    session.delete(webhook)
    session.flush()
    if sub is not None:
        session.delete(sub)
        session.flush()
    record_event(session, "webhook.deleted", ENTITY, webhook.id, diff(before, {}))


def rotate_secret(session: Session, secrets: SecretBox, webhook: Webhook) -> str:
    """A new secret signs every delivery from now on; the old one stops at once (no grace period)."""
    secret = new_secret()
    webhook.secret_encrypted = secrets.encrypt(secret)
    session.flush()
    record_event(session, "webhook.secret_rotated", ENTITY, webhook.id, {})
    return secret


# --- synchronous sends -----------------------------------------------------------------------------------
# The receiver is called with no transaction open (a slow receiver must not hold SQLite's writer lock):
# the webhook is read in a short read transaction of its own, and the request's session (a writer that
# begins at its first statement) only writes the log row afterwards.


def _send_now(
    ctx: AppContext,
    session: Session,
    webhook_id: uuid.UUID,
    event: EventOut,
    event_id: int | None,
    attempt: int,
) -> WebhookDelivery:
    with unit_of_work(ctx.db.reader) as reader:
        found = get_or_404(reader, webhook_id)
        url = found.url
        secret, error = subscriber.decrypt(ctx.secrets, found)
    if secret is None:
        result = subscriber.Attempt(None, 0, None, error)
    else:
        result = subscriber.post(
            url, secret, subscriber.payload(event), event_id=event.id, event_type=event.type, attempt=attempt
        )
    webhook = repository.get(session, webhook_id, for_update=True)
    if webhook is None:
        raise not_found("webhook", webhook_id)
    return subscriber.record(
        session,
        webhook,
        event_id=event_id,
        event_type=event.type,
        attempt=attempt,
        result=result,
        automatic=False,
    )


def ping(
    ctx: AppContext, session: Session, principal: Principal, webhook_id: uuid.UUID, request_id: str | None
) -> WebhookDelivery:
    """Send a ``webhook.ping`` (event id 0, not a business event) now and log it."""
    with unit_of_work(ctx.db.reader) as reader:
        attempt = repository.last_attempt(reader, webhook_id, None) + 1
    event = EventOut(
        id=0,
        type=PING,
        entity_type=ENTITY,
        entity_id=str(webhook_id),
        occurred_at=utcnow(),
        actor=EventActor(id=str(principal.token_id), name=principal.name, role=principal.role.value),
        changes={},
        request_id=request_id,
    )
    return _send_now(ctx, session, webhook_id, event, None, attempt)


def redeliver(
    ctx: AppContext,
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    delivery_id: int,
    request_id: str | None,
) -> WebhookDelivery:
    """Send the event of a logged delivery again, now, as a new attempt. A delivery that had given up
    counts as delivered when this succeeds."""
    with unit_of_work(ctx.db.reader) as reader:
        get_or_404(reader, webhook_id)
        logged = repository.get_delivery(reader, webhook_id, delivery_id)
        if logged is None:
            raise Problem(404, f"Webhook {webhook_id} has no delivery {delivery_id}.")
        event_id = logged.event_id
        row = reader.get(Event, event_id) if event_id is not None else None
        if event_id is not None and row is None:
            raise Problem(404, f"Event {event_id} no longer exists.")
        attempt = repository.last_attempt(reader, webhook_id, event_id) + 1
        event = EventOut.of(row) if row is not None else None
    if event is None:
        return ping(ctx, session, principal, webhook_id, request_id)
    out = _send_now(ctx, session, webhook_id, event, event.id, attempt)
    if out.succeeded:
        webhook = repository.get(session, webhook_id)
        if webhook is not None and webhook.subscription_id is not None:
            repository.mark_failed_delivered(session, webhook.subscription_id, event.id, out.created_at)
    return out


def redeliver_failed(session: Session, webhook: Webhook, since_event_id: int) -> int:
    """Queue again every delivery that gave up, for events from ``since_event_id`` on."""
    sub = _subscription(session, webhook)
    count = repository.requeue_failed(session, sub.id, since_event_id)
    if count and sub.active:
        resume(session, sub)
    return count

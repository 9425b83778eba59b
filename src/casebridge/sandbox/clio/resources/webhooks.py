"""Webhooks: subscriptions to a model's events, delivered by :mod:`casebridge.sandbox.clio.webhooks`.

- ``url``: ``https`` only (``http`` too with ``SandboxConfig.allow_http_webhooks``). Creating a webhook,
  or changing its URL, starts the handshake and makes it ``pending`` until the receiver echoes
  ``X-Hook-Secret`` or calls ``PUT /webhooks/{id}/activate`` with it (a wrong or missing secret is 403).
- ``model``: by name or by Clio's id (``contact`` or ``6``); responses name it.
- ``fields``: at most 1000 characters, checked like the ``fields`` parameter against the model's schema
  (422 here, as it is part of the body); what every delivery's ``data`` holds.
- ``events``: ``created``, ``updated``, ``deleted``, and for matters ``matter_opened``, ``matter_pended``,
  ``matter_closed`` (payments have no ``deleted``); all of the model's events when omitted.
- ``expires_at``: default three days from now, at most 31 days from now, on the sandbox clock; PATCH it
  to extend. ``shared_secret`` is generated and is a field like any other (ask for it with ``fields``).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio import fields as fieldsel
from casebridge.sandbox.clio.app import Ctx, ctx_of
from casebridge.sandbox.clio.errors import ClioError, invalid
from casebridge.sandbox.clio.resource import Link, Resource
from casebridge.sandbox.clio.resources.common import check_if_match, no_content, show, text, timestamp
from casebridge.sandbox.clio.state import Record, iso
from casebridge.sandbox.clio.webhooks import MODEL_BY_ID, MODELS, events_of, schema_for

MAX_FIELDS_LENGTH = 1000
DEFAULT_LIFETIME = timedelta(days=3)
MAX_LIFETIME = timedelta(days=31)

WEBHOOKS = Resource(
    "webhooks",
    "Webhook",
    "Webhook",
    nested={"user": Link("users", "user_id")},
    search=("url",),
    orders=("id",),
)

router = APIRouter()


def _url(ctx: Ctx, data: dict[str, Any]) -> str:
    url = text(data, "url", required=True)
    assert url is not None
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError:
        raise invalid(f"url is not a valid URL; got {url!r}") from None
    schemes = ("https", "http") if ctx.state.config.allow_http_webhooks else ("https",)
    if parts.scheme not in schemes:
        raise invalid(f"url must use the {' or '.join(schemes)} scheme; got {url!r}")
    if not parts.hostname:
        raise invalid(f"url must be an absolute URL with a host; got {url!r}")
    return url.strip()


def _model(data: dict[str, Any]) -> str:
    value = data.get("model")
    if value is None or value == "":
        raise invalid("model can't be blank")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in MODEL_BY_ID:
            raise invalid(f"model must be a model id from 1 to {len(MODEL_BY_ID)}; got {value}")
        return MODEL_BY_ID[value]
    if not isinstance(value, str) or value not in MODELS:
        raise invalid(f"model must be one of {', '.join(MODELS)} (or its id); got {value!r}")
    return value


def _fields(model: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid("fields can't be blank")
    if len(value) > MAX_FIELDS_LENGTH:
        raise invalid(f"fields must be at most {MAX_FIELDS_LENGTH} characters; got {len(value)}")
    try:
        selection = fieldsel.parse(value)
        schema = schema_for(model)
        if schema is not None:
            fieldsel.check(selection, schema)
    except ClioError as exc:
        raise invalid(f"fields: {exc.message}") from None
    return value


def _events(model: str, value: Any) -> list[str]:
    allowed = events_of(model)
    if value is None:
        return list(allowed)
    if not isinstance(value, list) or not value or not all(isinstance(e, str) for e in value):
        raise invalid("events must be a non-empty array of event names")
    unknown = [e for e in value if e not in allowed]
    if unknown:
        raise invalid(
            f"events: {', '.join(unknown)} not available for {model}; choose from {', '.join(allowed)}"
        )
    return list(dict.fromkeys(value))


def _expires_at(ctx: Ctx, data: dict[str, Any]) -> str | None:
    value = timestamp(data, "expires_at")
    if value is None:
        return None
    when = datetime.fromisoformat(value)
    now = ctx.state.clock.now()
    if when <= now:
        raise invalid(f"expires_at must be in the future; got {value}")
    if when > now + MAX_LIFETIME:
        raise invalid(f"expires_at must be at most 31 days from now ({iso(now + MAX_LIFETIME)}); got {value}")
    return iso(when)


@router.get("/webhooks")
def list_webhooks(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    return JSONResponse(WEBHOOKS.list(ctx, ctx.state.all("webhooks")))


@router.post("/webhooks")
async def create_webhook(request: Request) -> Response:
    ctx = ctx_of(request)
    WEBHOOKS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    url = _url(ctx, data)
    model = _model(data)
    fields = _fields(model, data.get("fields"))
    events = _events(model, data.get("events"))
    with ctx.state.lock:
        expires_at = _expires_at(ctx, data) or iso(ctx.state.clock.now() + DEFAULT_LIFETIME)
        record: Record = {
            "id": ctx.state.next_id("webhooks"),
            "url": url,
            "model": model,
            "fields": fields,
            "events": events,
            "expires_at": expires_at,
            "status": "pending",
            "shared_secret": secrets.token_hex(20),
            "user_id": ctx.user_id,
            "_seen": {},
        }
        ctx.state.put("webhooks", ctx.state.stamp(record, created=True))
        ctx.state.changed("webhooks", "created", record)  # the dispatcher starts the handshake
    return show(ctx, WEBHOOKS, record, status=201)


@router.get("/webhooks/{webhook_id}")
def show_webhook(request: Request, webhook_id: int) -> Response:
    ctx = ctx_of(request)
    return show(ctx, WEBHOOKS, WEBHOOKS.find(ctx, webhook_id))


@router.patch("/webhooks/{webhook_id}")
async def update_webhook(request: Request, webhook_id: int) -> Response:
    ctx = ctx_of(request)
    WEBHOOKS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        current = WEBHOOKS.find(ctx, webhook_id)
        check_if_match(ctx, current)
        record = dict(current)
        if "url" in data:
            record["url"] = _url(ctx, data)
        if "model" in data:
            record["model"] = _model(data)
        if "fields" in data or record["model"] != current["model"]:
            record["fields"] = _fields(record["model"], data.get("fields", record["fields"]))
        if "events" in data:
            record["events"] = _events(record["model"], data["events"])
        elif record["model"] != current["model"]:
            record["events"] = _events(record["model"], None)
        if "expires_at" in data:
            record["expires_at"] = _expires_at(ctx, data) or current["expires_at"]
        if record["model"] != current["model"] or record["fields"] != current["fields"]:
            record["_seen"] = {}  # watching other fields: every record's next update is delivered
        if record["url"] != current["url"]:
            record["status"] = "pending"  # a new handshake (the dispatcher sends it)
        ctx.state.put("webhooks", ctx.state.stamp(record))
        ctx.state.changed("webhooks", "updated", record, current)
    return show(ctx, WEBHOOKS, record)


@router.delete("/webhooks/{webhook_id}")
def delete_webhook(request: Request, webhook_id: int) -> Response:
    ctx = ctx_of(request)
    with ctx.state.lock:
        record = WEBHOOKS.find(ctx, webhook_id)
        ctx.state.remove("webhooks", webhook_id)
        ctx.state.changed("webhooks", "deleted", record)
    return no_content()


@router.put("/webhooks/{webhook_id}/activate")
def activate_webhook(request: Request, webhook_id: int) -> Response:
    """The delayed handshake (documented only in prose): the secret in ``X-Hook-Secret`` enables it."""
    ctx = ctx_of(request)
    WEBHOOKS.selection(ctx)
    given = request.headers.get("x-hook-secret")
    with ctx.state.lock:
        current = WEBHOOKS.find(ctx, webhook_id)
        if given is None or not secrets.compare_digest(given.encode(), current["shared_secret"].encode()):
            raise ClioError(
                403, "ForbiddenError", "The X-Hook-Secret header does not match this webhook's shared secret"
            )
        record = current
        if current["status"] != "enabled":
            record = {**current, "status": "enabled"}
            ctx.state.put("webhooks", ctx.state.stamp(record))
            ctx.state.changed("webhooks", "updated", record, current)
    return show(ctx, WEBHOOKS, record)

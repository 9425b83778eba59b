"""Request and response shapes for webhooks, URL and event-type pattern rules, and the event catalogue
a pattern is checked against."""

from __future__ import annotations

import difflib
import ipaddress
import re
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator

from casebridge.events.catalogue import EVENT_TYPES
from casebridge.kit.etag import etag_for
from casebridge.kit.schemas import StrictModel
from casebridge.models import Webhook, WebhookDelivery

# Every business event type a webhook can subscribe to (events/catalogue.py, docs/events.md).
KNOWN_EVENT_TYPES: tuple[str, ...] = tuple(EVENT_TYPES)
PING = "webhook.ping"  # sent by POST /webhooks/{id}/ping only; not a business event, not subscribable

_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
MAX_PATTERNS = 100


def matches(pattern: str, event_type: str) -> bool:
    """``*`` matches everything, ``matter.*`` every type starting ``matter.``, anything else itself."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def matches_any(patterns: list[str] | tuple[str, ...], event_type: str) -> bool:
    return any(matches(p, event_type) for p in patterns)


def _check_pattern(value: str) -> str:
    value = value.strip()
    if not _PATTERN.match(value):
        raise ValueError(
            f"'{value}' is not an event type pattern: use an exact type such as 'matter.status_changed', "
            "a prefix such as 'matter.*', or '*' for every event"
        )
    if not any(matches(value, t) for t in KNOWN_EVENT_TYPES):
        candidates = [*KNOWN_EVENT_TYPES, *sorted({t.split(".")[0] + ".*" for t in KNOWN_EVENT_TYPES})]
        close = difflib.get_close_matches(value, candidates, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"'{value}' matches no event type Casebridge raises (see docs/events.md){hint}")
    return value


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(value: str) -> str:
    value = value.strip()
    if any(c.isspace() for c in value):
        raise ValueError("a URL cannot contain spaces")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a bad port
    except ValueError:
        raise ValueError(f"'{value}' is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the URL must be absolute http(s), for example https://example.com/casebridge")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            "use https: plain http is allowed only to this machine (localhost, 127.0.0.1, ::1), for testing"
        )
    if parts.fragment:
        raise ValueError("a URL fragment (#...) is never sent; remove it")
    return value


def redact_url(url: str) -> str:
    """The URL without credentials or query string: what events (readable by every role) may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


WebhookUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_check_url)]
EventPattern = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_check_pattern)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
Filter = dict[str, Any]

_EVENT_TYPES_DOC = (
    "Exact event types (`matter.status_changed`), prefixes (`matter.*`) or `*`; each must match at least "
    "one type in docs/events.md."
)
_FILTER_DOC = (
    "Optional condition in the expression language (JSON-logic subset) over `{event: <the event>}`, e.g. "
    '`{"==": [{"var": "event.changes.status.new"}, "closed"]}`; only events for which it is true are sent.'
)


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class WebhookCreate(StrictModel):
    url: WebhookUrl = Field(description="https URL (http only to localhost) that receives POSTed events.")
    event_types: list[EventPattern] = Field(
        min_length=1, max_length=MAX_PATTERNS, description=_EVENT_TYPES_DOC
    )
    filter: Filter | None = Field(default=None, description=_FILTER_DOC)
    description: Description | None = None

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        return _dedupe(value)


class WebhookUpdate(StrictModel):
    """Only the fields sent change. `active: true` on a disabled webhook re-enables it."""

    url: WebhookUrl | None = None
    event_types: list[EventPattern] | None = Field(
        default=None, min_length=1, max_length=MAX_PATTERNS, description=_EVENT_TYPES_DOC
    )
    filter: Filter | None = Field(default=None, description=_FILTER_DOC + " `null` removes it.")
    description: Description | None = None
    active: bool | None = Field(
        default=None,
        description="false pauses deliveries (they wait); true resumes them and clears a disable reason.",
    )

    @field_validator("url", "event_types", "active")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be null")
        return value

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return _dedupe(value) if value is not None else None


class WebhookOut(BaseModel):
    id: uuid.UUID
    etag: str
    url: str
    description: str | None
    event_types: list[str]
    filter: Filter | None
    active: bool
    disabled_reason: str | None = Field(description="Why deliveries stopped, when Casebridge disabled it.")
    disabled_at: datetime | None
    consecutive_failures: int = Field(description="Failed attempts since the last successful delivery.")
    failing_since: datetime | None = Field(description="The first failure of the current run of failures.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, w: Webhook) -> WebhookOut:
        return cls(
            id=w.id,
            etag=etag_for(w.id, w.version),
            url=w.url,
            description=w.description,
            event_types=list(w.event_types),
            filter=w.filter,
            active=w.active,
            disabled_reason=w.disabled_reason,
            disabled_at=w.disabled_at,
            consecutive_failures=w.consecutive_failures,
            failing_since=w.failing_since,
            created_at=w.created_at,
            updated_at=w.updated_at,
        )


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="The signing secret. Shown only in this response: store it now; rotate it if lost."
    )

    @classmethod
    def with_secret(cls, w: Webhook, secret: str) -> WebhookWithSecret:
        return cls(**WebhookOut.of(w).model_dump(), secret=secret)


class DeliveryOut(BaseModel):
    id: int
    event_id: int | None = Field(description="The business event; null for a test ping.")
    event_type: str
    attempt: int
    succeeded: bool
    status_code: int | None = Field(description="The receiver's HTTP status; null if none arrived.")
    latency_ms: int | None
    response_excerpt: str | None = Field(description="The first 1,000 characters of the response body.")
    error: str | None = Field(description="Timeout, connection error or the reason a status is a failure.")
    created_at: datetime

    @classmethod
    def of(cls, d: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=d.id,
            event_id=d.event_id,
            event_type=d.event_type,
            attempt=d.attempt,
            succeeded=d.succeeded,
            status_code=d.status_code,
            latency_ms=d.latency_ms,
            response_excerpt=d.response_excerpt,
            error=d.error,
            created_at=d.created_at,
        )


class RedeliverQueued(BaseModel):
    queued: int = Field(description="Failed deliveries put back in the queue.")

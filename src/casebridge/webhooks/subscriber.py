"""The ``webhook`` event subscriber kind: signed HTTP delivery, the delivery log, health and auto-disable.

Each webhook owns one ``event_subscriptions`` row (kind ``webhook``, ``target_id`` = the webhook id);
``events/delivery.py`` fans events out to it and calls :func:`deliver` once per (event, attempt), in
order per entity, at least once. Here:

- :func:`wants` is the dispatcher's cheap filter: the webhook's type patterns, then its optional
  expression filter over ``{"event": <the event>}`` (an expression that errors at run time is false).
- :func:`deliver` POSTs the event, signed, and logs the attempt (status, latency, response excerpt,
  error) in ``webhook_deliveries`` together with the webhook's health. 2xx is success; 410 disables the
  webhook at once; 429/503 with ``Retry-After`` retry no sooner than it says; anything else (non-2xx,
  timeout, connection error) retries with exponential backoff for about a day (:data:`CONFIG`).
- Health: every failed automatic attempt increments ``consecutive_failures`` and sets
  ``failing_since`` at the first; a success resets both. A webhook that has failed without a single
  success for ``CONFIG.disable_after`` (24 h), or whose delivery used its last attempt while it had
  failed ever since that delivery's first attempt, is disabled with a reason: ``active`` false, its
  subscription paused (deliveries wait for re-enabling), and a ``webhook.disabled`` event.

Manual sends (ping, redeliver) are logged but leave the health counters alone; a 410 disables always.
"""

from __future__ import annotations

import atexit
import email.utils
import logging
import threading
import time
import uuid
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from casebridge import __version__
from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.events.delivery import Delivery, SubscriberKind, register_kind
from casebridge.events.outbox import record_event, subscribers_changed
from casebridge.events.schemas import EventOut
from casebridge.jobs.errors import RetryLater
from casebridge.jobs.queue import BULK
from casebridge.jobs.registry import JobRegistry
from casebridge.jobs.worker import JobContext
from casebridge.kit.crypto import SecretBox, SecretDecryptionError
from casebridge.kit.expressions import ExpressionError, truthy
from casebridge.models import Event, EventSubscription, Webhook, WebhookDelivery
from casebridge.webhooks import repository
from casebridge.webhooks.schemas import matches_any
from casebridge.webhooks.signing import HEADER as SIGNATURE_HEADER
from casebridge.webhooks.signing import sign

log = logging.getLogger("casebridge.webhooks")

KIND = "webhook"
ENTITY = "webhook"
PRUNE_JOB = "webhooks.prune_deliveries"
EXCERPT_CHARS = 1000
_READ_LIMIT = 4096  # bytes of a response body read for the excerpt; the rest is not read
USER_AGENT = f"Casebridge-Webhooks/{__version__}"


@dataclass(frozen=True)
class Config:
    """The delivery schedule and limits. Production uses the defaults; tests shrink them with
    :func:`configure`.

    With the defaults an event is tried 17 times: the waits after attempts 1..16 are
    ``min(3 h, 30 s x 2^(n-1))`` each x a random factor in [0.5, 1.5): 30 s, 1, 2, 4, 8, 16, 32 min,
    1.07 h, 2.13 h, then 3 h seven times: the last attempt comes about 25 h after the first.
    """

    max_attempts: int = 17
    backoff_base: float = 30.0
    backoff_cap: float = 3 * 3600.0
    timeout: float = 10.0  # seconds waiting for the response (and between its bytes)
    connect_timeout: float = 5.0
    # Disable after failing with no success for this long (the retry schedule's length, about a day).
    disable_after: timedelta = timedelta(hours=24)
    # Also disable after this many consecutive failed attempts (None: off; a count alone would disable
    # a busy firm's webhook after a short outage, since every changed record's event fails at once).
    disable_after_failures: int | None = None
    retry_after_cap: float = 24 * 3600.0  # the most a receiver's Retry-After can postpone an event
    log_retention: timedelta = timedelta(days=30)  # delivery log rows older than this are pruned daily


CONFIG = Config()


def configure(**changes: Any) -> Config:
    """Change the schedule (tests); returns the previous configuration for :func:`restore`."""
    global CONFIG
    previous = CONFIG
    unknown = set(changes) - {f.name for f in fields(Config)}
    if unknown:
        raise TypeError(f"unknown webhook settings: {', '.join(sorted(unknown))}")
    CONFIG = replace(CONFIG, **changes)
    _register_kind()
    return previous


def restore(config: Config) -> None:
    global CONFIG
    CONFIG = config
    _register_kind()


# --- sending ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """The outcome of one HTTP POST to a receiver."""

    status_code: int | None
    latency_ms: int
    excerpt: str | None
    error: str | None
    retry_after: float | None = None
    gone: bool = False

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def describe(self) -> str:
        if self.succeeded:
            return f"HTTP {self.status_code}"
        return self.error or f"HTTP {self.status_code}"


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def _http() -> httpx.Client:
    """One pooled client per process (keep-alive to receivers); thread-safe."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            )
        return _client


def close_http() -> None:
    """Close the pooled connections (at exit; tests between receivers)."""
    global _client
    with _client_lock:
        if _client is not None:
            _client.close()
            _client = None


atexit.register(close_http)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, min(seconds, CONFIG.retry_after_cap))


def payload(event: EventOut) -> bytes:
    """The request body: the event exactly as ``GET /api/v1/events`` shows it."""
    return event.model_dump_json().encode()


def post(url: str, secret: str, body: bytes, *, event_id: int, event_type: str, attempt: int) -> Attempt:
    """POST one signed event; never raises (a transport failure is an Attempt with an error)."""
    headers = {
        "Content-Type": "application/json",
        "Casebridge-Event-Id": str(event_id),
        "Casebridge-Event-Type": event_type,
        "Casebridge-Delivery-Attempt": str(attempt),
        SIGNATURE_HEADER: sign(secret, body),
    }
    timeout = httpx.Timeout(CONFIG.timeout, connect=CONFIG.connect_timeout)
    started = time.perf_counter()

    def elapsed() -> int:
        return round((time.perf_counter() - started) * 1000)

    try:
        with _http().stream("POST", url, content=body, headers=headers, timeout=timeout) as response:
            raw = bytearray()
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) >= _READ_LIMIT:
                    break
            status = response.status_code
            retry_after = _retry_after(response.headers.get("retry-after")) if status in (429, 503) else None
    except httpx.TimeoutException as exc:
        kind = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for the response"
        limit = CONFIG.connect_timeout if isinstance(exc, httpx.ConnectTimeout) else CONFIG.timeout
        return Attempt(None, elapsed(), None, f"timed out {kind} (limit {limit:g} s)")
    except httpx.HTTPError as exc:
        return Attempt(None, elapsed(), None, f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__)
    except Exception as exc:  # a malformed URL that passed validation, a TLS library error, ...
        return Attempt(None, elapsed(), None, f"{type(exc).__name__}: {exc}"[:1000])
    excerpt = raw.decode("utf-8", errors="replace")[:EXCERPT_CHARS] if raw else None
    error = None
    if not 200 <= status < 300:
        if 300 <= status < 400:
            error = f"HTTP {status}: redirects are not followed; point the webhook at the final URL"
        elif status == 410:
            error = "HTTP 410 Gone: the receiver asked for no more deliveries"
        elif retry_after is not None:
            error = f"HTTP {status}: Retry-After {retry_after:g} s"
        else:
            error = f"HTTP {status}: only 2xx counts as delivered"
    return Attempt(status, elapsed(), excerpt, error, retry_after, gone=status == 410)


# --- the delivery log and health ----------------------------------------------------------------------


def _fmt(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def disable(session: Session, webhook: Webhook, reason: str) -> None:
    """Stop deliveries to ``webhook`` (they wait in the queue), saying why; raises ``webhook.disabled``."""
    if not webhook.active:
        return
    now = utcnow()
    webhook.active = False
    webhook.disabled_at = now
    webhook.disabled_reason = reason[:4000]
    if webhook.subscription_id is not None:
        sub = session.get(EventSubscription, webhook.subscription_id)
        if sub is not None:
            sub.active = False
    session.flush()
    record_event(
        session,
        "webhook.disabled",
        ENTITY,
        webhook.id,
        {
            "active": {"old": True, "new": False},
            "disabled_at": {"old": None, "new": now.isoformat()},
            "disabled_reason": {"old": None, "new": webhook.disabled_reason},
        },
    )
    subscribers_changed()
    log.warning("webhook %s disabled: %s", webhook.id, reason)


def record(
    session: Session,
    webhook: Webhook,
    *,
    event_id: int | None,
    event_type: str,
    attempt: int,
    result: Attempt,
    automatic: bool,
) -> WebhookDelivery:
    """Log one attempt; for automatic deliveries also update the webhook's health (and maybe disable it)."""
    now = utcnow()
    row = WebhookDelivery(
        webhook_id=webhook.id,
        event_id=event_id,
        event_type=event_type,
        attempt=attempt,
        succeeded=result.succeeded,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        response_excerpt=result.excerpt,
        error=result.error,
        created_at=now,
    )
    session.add(row)
    if automatic:
        if result.succeeded:
            if webhook.consecutive_failures or webhook.failing_since is not None:
                webhook.consecutive_failures = 0
                webhook.failing_since = None
        else:
            webhook.consecutive_failures += 1
            if webhook.failing_since is None:
                webhook.failing_since = now
    if result.gone:
        disable(session, webhook, f"disabled at {_fmt(now)}: the receiver answered 410 Gone")
    elif automatic and not result.succeeded and webhook.active:
        since = webhook.failing_since or now
        limit = CONFIG.disable_after_failures
        if now - since >= CONFIG.disable_after or (
            limit is not None and webhook.consecutive_failures >= limit
        ):
            disable(
                session,
                webhook,
                f"disabled after {webhook.consecutive_failures} consecutive failed deliveries since "
                f"{_fmt(since)} (no delivery succeeded for {_span(now - since)}); last error: {result.describe()}",
            )
    session.flush()
    return row


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.1f} s"


# --- the subscriber kind ------------------------------------------------------------------------------

_WANTS_CACHE = "casebridge.webhook_targets"
_boxes: dict[str, SecretBox] = {}


@dataclass(frozen=True)
class Target:
    id: uuid.UUID
    url: str
    secret: str | None
    secret_error: str | None
    active: bool


def secret_box(ctx: JobContext) -> SecretBox:
    if ctx.settings is None:
        raise RuntimeError("this worker has no settings, so it cannot decrypt webhook secrets")
    key = ctx.settings.resolved_secret_key
    box = _boxes.get(key)
    if box is None:
        box = _boxes[key] = SecretBox(key)
    return box


def decrypt(box: SecretBox, webhook: Webhook) -> tuple[str | None, str | None]:
    """(secret, None), or (None, why not)."""
    try:
        return box.decrypt(webhook.secret_encrypted), None
    except SecretDecryptionError as exc:
        return None, f"cannot decrypt the signing secret: {exc}"


def wants(session: Session, subscription: EventSubscription, event: Event) -> bool:
    cache: dict[str, tuple[list[str], Any] | None] = session.info.setdefault(_WANTS_CACHE, {})
    key = subscription.target_id or ""
    if key not in cache:
        webhook = session.get(Webhook, uuid.UUID(key)) if key else None
        cache[key] = (list(webhook.event_types), webhook.filter) if webhook is not None else None
    target = cache[key]
    if target is None:
        return False
    patterns, condition = target
    if not matches_any(patterns, event.type):
        return False
    if condition is None:
        return True
    try:
        return truthy(condition, {"event": EventOut.of(event).model_dump(mode="json")})
    except ExpressionError as exc:
        log.info("webhook %s filter failed on event %s (treated as false): %s", key, event.id, exc)
        return False


def _target(ctx: JobContext, subscription: EventSubscription) -> Target | None:
    if not subscription.target_id:
        return None
    with unit_of_work(ctx.db.reader) as session:
        webhook = session.get(Webhook, uuid.UUID(subscription.target_id))
        if webhook is None:
            return None
        secret, error = decrypt(secret_box(ctx), webhook)
        return Target(webhook.id, webhook.url, secret, error, webhook.active)


class DeliveryFailed(Exception):
    pass


def deliver(d: Delivery) -> None:
    target = _target(d.ctx, d.subscription)
    if target is None:
        return  # the webhook was deleted (its subscription and deliveries go with it)
    if not target.active:
        raise DeliveryFailed("the webhook is disabled; the delivery waits until it is re-enabled")
    if target.secret is None:
        result = Attempt(None, 0, None, target.secret_error)
    else:
        result = post(
            target.url,
            target.secret,
            payload(d.event),
            event_id=d.event.id,
            event_type=d.event.type,
            attempt=d.attempt,
        )
    with d.ctx.unit_of_work() as session:
        webhook = repository.get(session, target.id)
        if webhook is not None and (
            not result.succeeded or webhook.consecutive_failures or webhook.failing_since is not None
        ):
            # the health counters change: lock the row (a success on a healthy webhook only logs, so
            # concurrent deliveries to one webhook do not queue on its row)
            session.refresh(webhook, with_for_update={"key_share": True})
        if webhook is not None:
            record(
                session,
                webhook,
                event_id=d.event.id,
                event_type=d.event.type,
                attempt=d.attempt,
                result=result,
                automatic=True,
            )
    if result.succeeded:
        return
    if result.retry_after is not None:
        raise RetryLater(result.retry_after, result.describe())
    raise DeliveryFailed(result.describe())


def on_exhausted(ctx: JobContext, subscription: EventSubscription, event: EventOut, error: str) -> None:
    """A delivery used its last attempt: if no delivery to this webhook has succeeded since that one
    first failed, the endpoint has been down for the whole retry schedule: disable it."""
    if not subscription.target_id:
        return
    with ctx.unit_of_work() as session:
        webhook = repository.get(session, uuid.UUID(subscription.target_id), for_update=True)
        if webhook is None or not webhook.active or webhook.failing_since is None:
            return
        first = repository.first_attempt_at(session, webhook.id, event.id)
        if first is None or webhook.failing_since > first:
            return  # something succeeded in between: this event is the problem, not the endpoint
        disable(
            session,
            webhook,
            f"disabled after event {event.id} ({event.type}) failed all {CONFIG.max_attempts} attempts "
            f"since {_fmt(first)} and {webhook.consecutive_failures} consecutive deliveries failed; "
            f"last error: {error}",
        )


def prune_deliveries(ctx: JobContext) -> None:
    with ctx.unit_of_work() as session:
        repository.prune_log(session, utcnow() - CONFIG.log_retention)


def _register_kind() -> None:
    register_kind(
        SubscriberKind(
            name=KIND,
            wants=wants,
            deliver=deliver,
            max_attempts=CONFIG.max_attempts,
            backoff_base=CONFIG.backoff_base,
            backoff_cap=CONFIG.backoff_cap,
            on_exhausted=on_exhausted,
        )
    )


_register_kind()  # every process that imports this (the API, every worker) knows the kind


def register(registry: JobRegistry) -> None:
    """Called by jobs.builtin.build_registry in every process that runs workers."""
    _register_kind()
    registry.register(PRUNE_JOB, prune_deliveries)
    registry.every("webhook-deliveries-prune", PRUNE_JOB, "45 3 * * *", priority=BULK)


def subscription_for(session: Session, webhook: Webhook) -> EventSubscription | None:
    if webhook.subscription_id is None:
        return None
    return session.scalar(select(EventSubscription).where(EventSubscription.id == webhook.subscription_id))

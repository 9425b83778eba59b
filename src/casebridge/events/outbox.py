"""Queue events on a session and write them, in commit order, as the transaction commits."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, exists, select, text
from sqlalchemy.orm import Session

from casebridge.db.types import utcnow
from casebridge.jobs import queue
from casebridge.kit.context import Principal
from casebridge.models import Event, EventSubscription

_PENDING = "casebridge.pending_events"
ACTOR = "casebridge.actor"
REQUEST_ID = "casebridge.request_id"
# Held from the events' INSERT to COMMIT so that event ids are assigned in commit order (PostgreSQL).
_OUTBOX_LOCK_ID = 0x43425F4F5554  # "CB_OUT"
DISPATCH = "events.dispatch"


@dataclass(frozen=True)
class PendingEvent:
    type: str
    entity_type: str
    entity_id: str
    changes: dict[str, Any]


def record_event(
    session: Session, type_: str, entity_type: str, entity_id: object, changes: dict[str, Any] | None = None
) -> None:
    session.info.setdefault(_PENDING, []).append(
        PendingEvent(type_, entity_type, str(entity_id), changes or {})
    )


def set_actor(session: Session, principal: Principal | None, request_id: str | None) -> None:
    session.info[ACTOR] = principal
    session.info[REQUEST_ID] = request_id


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Changed fields as ``{field: {"old": ..., "new": ...}}`` over two JSON-ready snapshots."""
    keys = list(dict.fromkeys([*before, *after]))
    return {k: {"old": before.get(k), "new": after.get(k)} for k in keys if before.get(k) != after.get(k)}


def _write_pending(session: Session) -> None:
    pending: list[PendingEvent] = session.info.pop(_PENDING, [])
    if not pending:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _OUTBOX_LOCK_ID})
    actor: Principal | None = session.info.get(ACTOR)
    request_id: str | None = session.info.get(REQUEST_ID)
    now = utcnow()
    session.add_all(
        Event(
            type=p.type,
            entity_type=p.entity_type,
            entity_id=p.entity_id,
            changes=p.changes,
            occurred_at=now,
            actor_id=str(actor.token_id) if actor else None,
            actor_name=actor.name if actor else "system",
            actor_role=actor.role.value if actor else None,
            request_id=request_id,
        )
        for p in pending
    )
    if has_subscribers(session):
        request_dispatch(session)


_SUBSCRIBERS_TTL = 5.0
_subscribers_seen: dict[str, tuple[bool, float]] = {}


def has_subscribers(session: Session) -> bool:
    """Whether any subscriber is active, cached per database for a few seconds: a firm with no
    webhooks or workflows pays nothing for fan-out. Events are never lost by the cache: a subscriber
    reads from its own cursor, so at worst its first events wait for the next write to dispatch them."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    now = time.monotonic()
    cached = _subscribers_seen.get(key)
    if cached is not None and cached[1] > now:
        return cached[0]
    active = bool(session.scalar(select(exists().where(EventSubscription.active.is_(True)))))
    _subscribers_seen[key] = (active, now + _SUBSCRIBERS_TTL)
    return active


def subscribers_changed() -> None:
    """Forget the cached answer (this process just added or re-activated a subscriber)."""
    _subscribers_seen.clear()


def request_dispatch(session: Session) -> None:
    """Make sure an event dispatcher will run after this transaction (no-op if one already waits)."""
    queue.enqueue(
        session,
        DISPATCH,
        {},
        priority=queue.INTERACTIVE,
        unique_key=DISPATCH,
        concurrency_key=DISPATCH,
        max_attempts=1000,
    )


def _discard_pending(session: Session, *_: Any) -> None:
    session.info.pop(_PENDING, None)


# Installed on every Session as this module is imported: no code path can record an event (which
# needs this module) on a session that would not write it at commit.
event.listen(Session, "before_commit", _write_pending)
event.listen(Session, "after_rollback", _discard_pending)

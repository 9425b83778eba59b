"""A remote API's rate-limit budget, kept in the database so every worker process shares it.

The remote (Clio) counts requests per access token in windows and says, on every response, the limit,
what remains and when the window resets (``X-RateLimit-*``); a 429 carries ``Retry-After``. We keep our
own count in ``sync_rate_budgets`` and take a permit *before* each request, so the limit is never
knowingly exceeded:

- ``acquire`` grants a permit (0.0) or says how long to wait. Bulk work (backfills, full reconciles)
  leaves the last ``RESERVE`` permits of a window to interactive work and stands back while
  interactive work is waiting; interactive work takes any permit.
- ``release`` records the response: our count never rises above the remote's, a new window the remote
  started is adopted, a 429 empties the window until its ``Retry-After``.
- ``in_flight`` counts requests sent and not yet answered: at a window's reset they may still land
  in the new window, so they are taken off its permits.

Until the remote has told us its limit we assume ``DEFAULT_LIMIT`` per ``DEFAULT_WINDOW``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from casebridge.db.session import Database, unit_of_work
from casebridge.db.types import utcnow
from casebridge.models import SyncRateBudget

DEFAULT_LIMIT = 50
DEFAULT_WINDOW = timedelta(seconds=60)
RESERVE = 1  # permits per window that bulk work leaves to interactive work
# After this long without a response, requests counted in flight are assumed lost (a crashed process).
IN_FLIGHT_TIMEOUT = timedelta(seconds=90)
# Two reset times this close are the same window (the remote rounds its reset to whole seconds).
SAME_WINDOW = timedelta(seconds=2)


@dataclass(frozen=True)
class BudgetView:
    limit: int
    remaining: int
    reset_at: datetime | None
    in_flight: int
    granted: int
    limited: int


def _row(session: Session, connection_id: uuid.UUID) -> SyncRateBudget:
    row = session.scalar(
        select(SyncRateBudget).where(SyncRateBudget.connection_id == connection_id).with_for_update()
    )
    if row is None:
        row = SyncRateBudget(
            connection_id=connection_id,
            limit=DEFAULT_LIMIT,
            remaining=DEFAULT_LIMIT,
            in_flight=0,
            granted=0,
            limited=0,
        )
        session.add(row)
        session.flush()
    return row


def _roll(row: SyncRateBudget, now: datetime) -> None:
    """Start a new window when the last one has ended; forget in-flight requests nobody answered."""
    if row.last_sent_at is not None and now - row.last_sent_at > IN_FLIGHT_TIMEOUT:
        row.in_flight = 0
    if row.reset_at is not None and now >= row.reset_at:
        row.remaining = max(0, row.limit - row.in_flight)
        row.reset_at = None


def acquire(db: Database, connection_id: uuid.UUID, *, bulk: bool) -> float:
    """A permit for one request (returns 0.0), or the seconds to wait before asking again."""
    with unit_of_work(db.writer) as session:
        row = _row(session, connection_id)
        now = utcnow()
        _roll(row, now)
        if bulk and row.interactive_waiting_until is not None and row.interactive_waiting_until > now:
            return max(0.05, (row.interactive_waiting_until - now).total_seconds())
        reserve = RESERVE if bulk else 0
        if row.remaining > reserve:
            row.remaining -= 1
            row.in_flight += 1
            row.granted += 1
            row.last_sent_at = now
            if row.reset_at is None:  # the first request of a window we have not been told about yet
                row.reset_at = now + DEFAULT_WINDOW
            return 0.0
        reset_at = row.reset_at or now + timedelta(seconds=1)
        if not bulk:
            row.interactive_waiting_until = reset_at + timedelta(seconds=1)
        return max(0.05, (reset_at - now).total_seconds())


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(float(raw))
    except ValueError:
        return None


def release(
    db: Database, connection_id: uuid.UUID, status: int | None, headers: Mapping[str, str] | None
) -> None:
    """Record the answer to a request ``acquire`` granted (``status`` None: no answer arrived)."""
    headers = headers or {}
    with unit_of_work(db.writer) as session:
        row = _row(session, connection_id)
        now = utcnow()
        row.in_flight = max(0, row.in_flight - 1)
        limit = _header_int(headers, "x-ratelimit-limit")
        remaining = _header_int(headers, "x-ratelimit-remaining")
        reset = _header_int(headers, "x-ratelimit-reset")
        if limit is not None and limit > 0 and limit != row.limit:
            # We learnt the real limit (until now: a guess, or it changed): what remains moves with it.
            row.remaining = max(0, row.remaining + limit - row.limit)
            row.limit = limit
        if status == 429:
            row.limited += 1
            retry_after = _header_int(headers, "retry-after")
            wait = timedelta(seconds=retry_after if retry_after is not None else 1)
            until = now + wait
            if reset is not None:
                until = max(until, datetime.fromtimestamp(reset, UTC))
            row.remaining = 0
            row.reset_at = until
            return
        if remaining is None or reset is None:
            return
        their_reset = datetime.fromtimestamp(reset, UTC)
        if their_reset <= now:
            return  # a late answer from a window that has ended: it says nothing about this one
        if row.reset_at is None or their_reset - row.reset_at > SAME_WINDOW:
            # The remote is in a window we had not seen: take its count, less what is still on its way.
            row.reset_at = their_reset
            row.remaining = max(0, remaining - row.in_flight)
        elif row.reset_at - their_reset > SAME_WINDOW:
            # Our window was a guess (the remote's is shorter): adopt the remote's end.
            row.reset_at = their_reset
            row.remaining = min(row.remaining, remaining)
        else:
            row.remaining = min(row.remaining, remaining)
            row.reset_at = max(row.reset_at, their_reset)
        if row.interactive_waiting_until is not None and row.interactive_waiting_until <= now:
            row.interactive_waiting_until = None


def view(session: Session, connection_id: uuid.UUID) -> BudgetView | None:
    row = session.get(SyncRateBudget, connection_id)
    if row is None:
        return None
    return BudgetView(row.limit, row.remaining, row.reset_at, row.in_flight, row.granted, row.limited)

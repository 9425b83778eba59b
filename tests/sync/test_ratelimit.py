"""The shared rate budget, against the real database: permits, what the remote's headers teach it,
bulk work leaving room for interactive work, 429s, and answers from a window that has ended."""

from __future__ import annotations

import time
import uuid

from casebridge.db.session import unit_of_work
from casebridge.models import Connection
from casebridge.sync import ratelimit
from tests.conftest import Backend


def _connection(backend: Backend) -> uuid.UUID:
    with unit_of_work(backend.db.writer) as session:
        conn = Connection(
            vendor="clio",
            name="budget",
            state="connected",
            base_url="http://clio.invalid",
            api_version="4.0.9",
            client_id="c",
            client_secret_encrypted="x",
            redirect_uri="http://x/cb",
            settings={},
        )
        session.add(conn)
        session.flush()
        return conn.id


def _headers(limit: int, remaining: int, reset_in: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(int(time.time() + reset_in)),
    }


def test_permits_follow_what_the_remote_says(clean: Backend) -> None:
    cid = _connection(clean)
    db = clean.db
    assert ratelimit.acquire(db, cid, bulk=False) == 0.0  # first request: a guessed window of 50
    ratelimit.release(db, cid, 200, _headers(5, 4, 30))  # the remote: 5 a window, 4 left, 30 s to go
    granted = 0
    while ratelimit.acquire(db, cid, bulk=False) == 0.0:
        granted += 1
        ratelimit.release(db, cid, 200, _headers(5, 4 - granted, 30))
    assert granted == 4  # never beyond what the remote said is left
    wait = ratelimit.acquire(db, cid, bulk=False)
    assert 25 < wait <= 31
    with unit_of_work(db.reader) as session:
        view = ratelimit.view(session, cid)
    assert view is not None
    assert (view.limit, view.remaining, view.in_flight) == (5, 0, 0)


def test_bulk_work_leaves_the_last_permit_and_stands_back(clean: Backend) -> None:
    cid = _connection(clean)
    db = clean.db
    ratelimit.acquire(db, cid, bulk=True)
    ratelimit.release(db, cid, 200, _headers(3, 2, 30))
    assert ratelimit.acquire(db, cid, bulk=True) == 0.0
    ratelimit.release(db, cid, 200, _headers(3, 1, 30))
    assert ratelimit.acquire(db, cid, bulk=True) > 0  # the last permit is interactive work's
    assert ratelimit.acquire(db, cid, bulk=False) == 0.0
    ratelimit.release(db, cid, 200, _headers(3, 0, 30))
    assert ratelimit.acquire(db, cid, bulk=False) > 0  # now interactive work waits too...
    assert ratelimit.acquire(db, cid, bulk=True) > 30  # ...and bulk stands back until it has gone


def test_a_429_empties_the_window_until_retry_after(clean: Backend) -> None:
    cid = _connection(clean)
    db = clean.db
    ratelimit.acquire(db, cid, bulk=False)
    ratelimit.release(db, cid, 429, {"retry-after": "7"})
    wait = ratelimit.acquire(db, cid, bulk=False)
    assert 6 < wait <= 7.5
    with unit_of_work(db.reader) as session:
        view = ratelimit.view(session, cid)
    assert view is not None
    assert view.limited == 1


def test_answers_from_an_ended_window_are_ignored_and_in_flight_requests_count(clean: Backend) -> None:
    cid = _connection(clean)
    db = clean.db
    for _ in range(3):
        assert ratelimit.acquire(db, cid, bulk=False) == 0.0
    ratelimit.release(db, cid, 200, _headers(10, 9, 30))
    ratelimit.release(db, cid, 200, _headers(10, 0, -5))  # a late answer: its window already ended
    with unit_of_work(db.reader) as session:
        view = ratelimit.view(session, cid)
    assert view is not None
    assert view.remaining == 7  # 10, less the three we sent (one still on its way)
    assert view.in_flight == 1
    ratelimit.release(db, cid, None, None)  # no answer at all (a dropped connection)
    with unit_of_work(db.reader) as session:
        view = ratelimit.view(session, cid)
    assert view is not None
    assert view.in_flight == 0

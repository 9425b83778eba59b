"""/api/v1/jobs: list (filters, cursor paging by id desc), get, retry and discard with 409 on a wrong
state; reads for admin and integration tokens, writes for admins only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from casebridge.db.session import unit_of_work
from casebridge.jobs import queue
from casebridge.kit.context import Role
from casebridge.models import Job
from tests.conftest import Backend, MakeClient

JOBS = "/api/v1/jobs"
LEASE = timedelta(seconds=30)


def enqueue(backend: Backend, kind: str, args: dict[str, Any] | None = None, **kw: Any) -> int:
    with unit_of_work(backend.db.writer) as session:
        job_id = queue.enqueue(session, kind, args or {}, **kw)
    assert job_id is not None
    return job_id


def claim(backend: Backend, queues: list[str] | None = None) -> queue.ClaimedJob:
    with unit_of_work(backend.db.writer) as session:
        job = queue.claim(session, "test-worker", queues, lease=LEASE)
    assert job is not None
    return job


def make_dead(backend: Backend, kind: str = "obs.dead", **kw: Any) -> int:
    """Enqueue a job on a queue of its own and fail it for good, as a worker would."""
    q = f"q-{kind}"
    enqueue(backend, kind, {"matter": "M-1"}, queue=q, max_attempts=2, **kw)
    first = claim(backend, [q])
    with unit_of_work(backend.db.writer) as session:
        assert queue.fail(session, first, "test-worker", "TimeoutError: the PMS did not answer", retry_in=0)
    second = claim(backend, [q])
    with unit_of_work(backend.db.writer) as session:
        assert queue.fail(session, second, "test-worker", "TimeoutError: again") == "dead"
    return second.id


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    return body


def test_list_is_newest_first_with_cursor_paging(api: httpx.Client, clean: Backend) -> None:
    ids = [enqueue(clean, "obs.page", {"n": n}) for n in range(7)]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        r = api.get(JOBS, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [j["id"] for j in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert pages == 3
    item = r.json()["data"][0]
    assert item["kind"] == "obs.page"
    assert item["state"] == "available"
    assert "args" not in item  # the list is a summary; GET /jobs/{id} has the arguments and errors


def test_list_filters_by_state_queue_and_kind(api: httpx.Client, clean: Backend) -> None:
    a = enqueue(clean, "obs.alpha")
    b = enqueue(clean, "obs.beta", queue="mail")
    dead = make_dead(clean)

    def ids(**params: str) -> list[int]:
        r = api.get(JOBS, params=params)
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["data"]]

    assert ids(state="dead") == [dead]
    assert set(ids(state="available")) == {a, b}
    assert ids(queue="mail") == [b]
    assert ids(kind="obs.alpha") == [a]
    assert ids(kind="obs.alpha", queue="mail") == []
    assert ids(state="available", queue="mail", kind="obs.beta") == [b]
    bad = problem(api.get(JOBS, params={"state": "sleeping"}), 422)
    assert bad["errors"][0]["field"] == "query.state"
    assert problem(api.get(JOBS, params={"cursor": "garbage"}), 422)["errors"][0]["field"] == "query.cursor"


def test_get_shows_args_attempts_errors_and_timestamps(api: httpx.Client, clean: Backend) -> None:
    dead = make_dead(clean, unique_key="sync:M-1")
    r = api.get(f"{JOBS}/{dead}")
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["id"] == dead
    assert job["state"] == "dead"
    assert job["args"] == {"matter": "M-1"}
    assert job["attempts"] == 2
    assert job["max_attempts"] == 2
    assert job["last_error"] == "TimeoutError: again"
    assert [e["attempt"] for e in job["errors"]] == [1, 2]
    assert job["errors"][0]["error"] == "TimeoutError: the PMS did not answer"
    assert job["errors"][0]["at"]
    assert job["unique_key"] == "sync:M-1"
    assert job["created_at"]
    assert job["run_at"]
    assert job["started_at"]
    assert job["finished_at"]
    assert job["locked_by"] is None
    problem(api.get(f"{JOBS}/999999"), 404)


def test_retry_a_dead_job_and_409_otherwise(api: httpx.Client, clean: Backend) -> None:
    dead = make_dead(clean)
    r = api.post(f"{JOBS}/{dead}/retry")
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["state"] == "available"
    assert job["attempts"] == 0
    assert job["finished_at"] is None
    assert job["errors"]  # the history is kept
    # now it waits: retrying again is a state conflict
    body = problem(api.post(f"{JOBS}/{dead}/retry"), 409)
    assert body["type"] == "/problems/invalid-state"
    assert body["state"] == "available"
    # running: neither retry nor discard
    running = claim(clean, ["q-obs.dead"])
    assert running.id == dead
    assert problem(api.post(f"{JOBS}/{dead}/retry"), 409)["state"] == "running"
    assert problem(api.post(f"{JOBS}/{dead}/discard"), 409)["state"] == "running"
    problem(api.post(f"{JOBS}/999999/retry"), 404)


def test_retry_wakes_it_for_a_worker(api: httpx.Client, clean: Backend) -> None:
    dead = make_dead(clean)
    assert api.post(f"{JOBS}/{dead}/retry").status_code == 200
    again = claim(clean, ["q-obs.dead"])  # claimable at once
    assert (again.id, again.attempt) == (dead, 1)


def test_discard_a_waiting_or_dead_job(api: httpx.Client, clean: Backend) -> None:
    waiting = enqueue(clean, "obs.wait")
    dead = make_dead(clean)
    for job_id in (waiting, dead):
        r = api.post(f"{JOBS}/{job_id}/discard")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "cancelled"
        assert r.json()["finished_at"]
    body = problem(api.post(f"{JOBS}/{waiting}/discard"), 409)
    assert body["type"] == "/problems/invalid-state"
    assert body["state"] == "cancelled"
    # a cancelled job can be retried
    r = api.post(f"{JOBS}/{waiting}/retry")
    assert r.status_code == 200
    assert r.json()["state"] == "available"
    problem(api.post(f"{JOBS}/999999/discard"), 404)
    with unit_of_work(clean.db.reader) as session:
        assert session.get(Job, dead).state == "cancelled"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        (Role.ADMIN, 200, 200),
        (Role.INTEGRATION, 200, 403),
        (Role.STAFF, 403, 403),
        (Role.READ_ONLY, 403, 403),
    ],
)
def test_roles(make_client: MakeClient, clean: Backend, role: Role, read: int, write: int) -> None:
    client = make_client(role)
    dead = make_dead(clean)
    assert client.get(JOBS).status_code == read
    assert client.get(f"{JOBS}/{dead}").status_code == read
    assert client.post(f"{JOBS}/{dead}/discard").status_code == write

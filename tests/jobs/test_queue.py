"""The job queue in one process, on SQLite and PostgreSQL: enqueue, claim, retry, dead, leases, slots."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.jobs import queue
from casebridge.jobs.errors import GiveUp, RetryLater, Snooze
from casebridge.jobs.registry import JobRegistry
from casebridge.jobs.worker import JobContext, Worker
from casebridge.models import Job
from tests.conftest import Backend


def enqueue(backend: Backend, kind: str, args: dict[str, Any] | None = None, **kw: Any) -> int | None:
    with unit_of_work(backend.db.writer) as session:
        return queue.enqueue(session, kind, args or {}, **kw)


def jobs(backend: Backend) -> list[Job]:
    with unit_of_work(backend.db.reader) as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture
def run_worker(clean: Backend) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(registry: JobRegistry, **kw: Any) -> Worker:
        kw.setdefault("poll_interval", 0.05)
        kw.setdefault("lease_seconds", 2.0)
        w = Worker(clean.db, registry, **kw)
        w.start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.shutdown_grace = 5
        w.stop()


def test_enqueue_is_part_of_the_callers_transaction(clean: Backend) -> None:
    with pytest.raises(RuntimeError), unit_of_work(clean.db.writer) as session:  # noqa: PT012
        queue.enqueue(session, "x.y")
        raise RuntimeError("the change failed")
    assert jobs(clean) == []
    assert enqueue(clean, "x.y") is not None
    assert [j.kind for j in jobs(clean)] == ["x.y"]


def test_unique_key_is_a_no_op_while_an_identical_job_waits(clean: Backend) -> None:
    first = enqueue(clean, "sync.reconcile", unique_key="contact:1")
    assert first is not None
    assert enqueue(clean, "sync.reconcile", unique_key="contact:1") is None
    with unit_of_work(clean.db.writer) as session:
        claimed = queue.claim(session, "w1", None, lease=timedelta(seconds=30))
    assert claimed is not None
    # running, not waiting: a new trigger must queue a fresh run after this one
    assert enqueue(clean, "sync.reconcile", unique_key="contact:1") is not None


def test_expedite_brings_an_identical_waiting_job_forward(clean: Backend) -> None:
    """Level-triggered work (a sync reconcile snoozed or backing off): a new trigger means "now"."""
    later = utcnow() + timedelta(minutes=10)
    first = enqueue(clean, "sync.reconcile", unique_key="link:1", run_at=later, priority=queue.BULK)
    again = enqueue(clean, "sync.reconcile", unique_key="link:1", expedite=True, priority=queue.INTERACTIVE)
    assert again == first  # the same job, brought forward
    (job,) = jobs(clean)
    assert job.run_at <= utcnow()
    assert job.priority == queue.INTERACTIVE
    enqueue(clean, "sync.reconcile", unique_key="link:1", expedite=True, run_at=later, priority=queue.BULK)
    (job,) = jobs(clean)
    assert job.run_at <= utcnow()  # never pushed back
    assert job.priority == queue.INTERACTIVE


def test_priority_then_due_time_then_id(clean: Backend) -> None:
    bulk = enqueue(clean, "k", priority=queue.BULK)
    later = enqueue(clean, "k", priority=queue.INTERACTIVE, run_at=utcnow() + timedelta(hours=1))
    normal = enqueue(clean, "k")
    urgent = enqueue(clean, "k", priority=queue.INTERACTIVE)
    order = []
    with unit_of_work(clean.db.writer) as session:
        while (job := queue.claim(session, "w", None, lease=timedelta(seconds=30))) is not None:
            order.append(job.id)
    assert order == [urgent, normal, bulk]
    assert later not in order


def test_concurrency_key_allows_one_running_job(clean: Backend) -> None:
    a1 = enqueue(clean, "k", concurrency_key="matter:1")
    a2 = enqueue(clean, "k", concurrency_key="matter:1")
    b1 = enqueue(clean, "k", concurrency_key="matter:2")
    lease = timedelta(seconds=30)
    with unit_of_work(clean.db.writer) as session:
        got = [queue.claim(session, "w", None, lease=lease) for _ in range(3)]
    assert [g.id if g else None for g in got] == [a1, b1, None]
    with unit_of_work(clean.db.writer) as session:
        assert got[0] is not None
        queue.complete(session, got[0].id, "w")
        nxt = queue.claim(session, "w", None, lease=lease)
    assert nxt is not None
    assert nxt.id == a2


def test_worker_runs_retries_with_backoff_then_dead_and_retry_from_dead(
    clean: Backend, run_worker: Callable[..., Worker]
) -> None:
    calls: list[int] = []
    registry = JobRegistry()

    @registry.job("flaky.once", backoff_base=0.01, backoff_cap=0.05)
    def flaky(ctx: JobContext) -> None:
        calls.append(ctx.job.attempt)
        if ctx.job.attempt == 1:
            raise ConnectionError("finance system down")

    @registry.job("always.fails", backoff_base=0.01, backoff_cap=0.02)
    def broken(ctx: JobContext) -> None:
        raise ValueError("bad data")

    ok_id = enqueue(clean, "flaky.once")
    dead_id = enqueue(clean, "always.fails", max_attempts=3)
    run_worker(registry)
    wait_for(lambda: {j.id: j.state for j in jobs(clean)} == {ok_id: "completed", dead_id: "dead"})
    by_id = {j.id: j for j in jobs(clean)}
    assert calls == [1, 2]
    assert by_id[ok_id].errors[0]["error"].startswith("ConnectionError: finance system down")
    dead = by_id[dead_id]
    assert dead.attempts == 3
    assert [e["attempt"] for e in dead.errors] == [1, 2, 3]
    assert dead.last_error is not None
    assert dead.last_error.startswith("ValueError: bad data")
    with unit_of_work(clean.db.writer) as session:
        assert queue.retry(session, dead_id)  # type: ignore[arg-type]
    wait_for(lambda: next(j for j in jobs(clean) if j.id == dead_id).state == "dead")
    assert next(j for j in jobs(clean) if j.id == dead_id).attempts == 3


def test_typed_outcomes(clean: Backend, run_worker: Callable[..., Worker]) -> None:
    registry = JobRegistry()
    seen: list[str] = []

    @registry.job("snoozes")
    def snoozes(ctx: JobContext) -> None:
        seen.append(f"snooze{ctx.job.attempt}")
        if len(seen) == 1:
            raise Snooze(0.05)

    @registry.job("gives.up")
    def gives_up(ctx: JobContext) -> None:
        raise GiveUp("the matter no longer exists")

    @registry.job("rate.limited")
    def limited(ctx: JobContext) -> None:
        if ctx.job.attempt == 1:
            raise RetryLater(0.05, "429 from Clio")

    s, g, r = enqueue(clean, "snoozes"), enqueue(clean, "gives.up"), enqueue(clean, "rate.limited")
    unknown = enqueue(clean, "no.such.kind")
    run_worker(registry)
    wait_for(lambda: all(j.state in ("completed", "dead") for j in jobs(clean)))
    by_id = {j.id: j for j in jobs(clean)}
    assert by_id[s].state == "completed"
    assert by_id[s].attempts == 1  # the snooze did not use an attempt
    assert seen == ["snooze1", "snooze1"]
    assert (by_id[g].state, by_id[g].attempts) == ("dead", 1)
    assert "the matter no longer exists" in (by_id[g].last_error or "")
    assert (by_id[r].state, by_id[r].attempts) == ("completed", 2)
    assert by_id[unknown].state == "dead"
    assert "no handler" in (by_id[unknown].last_error or "")


def test_expired_lease_is_rescued_and_a_stale_worker_cannot_overwrite(clean: Backend) -> None:
    job_id = enqueue(clean, "k")
    lease = timedelta(seconds=30)
    with unit_of_work(clean.db.writer) as session:
        stale = queue.claim(session, "dead-worker", None, lease=lease)
        assert stale is not None
        session.execute(
            update(Job).where(Job.id == job_id).values(locked_until=utcnow() - timedelta(seconds=1))
        )
    with unit_of_work(clean.db.writer) as session:
        assert queue.rescue_expired(session) == 1
        fresh = queue.claim(session, "live-worker", None, lease=lease)
    assert fresh is not None
    assert (fresh.id, fresh.attempt) == (job_id, 2)
    with unit_of_work(clean.db.writer) as session:
        assert not queue.complete(session, job_id, "dead-worker")  # type: ignore[arg-type]
        assert queue.fail(session, stale, "dead-worker", "late") == "lost"
        assert queue.complete(session, job_id, "live-worker")  # type: ignore[arg-type]
    assert jobs(clean)[0].state == "completed"


def test_heartbeat_keeps_a_long_job_leased(clean: Backend, run_worker: Callable[..., Worker]) -> None:
    registry = JobRegistry()
    runs: list[int] = []

    @registry.job("slow")
    def slow(ctx: JobContext) -> None:
        runs.append(ctx.job.attempt)
        time.sleep(1.5)  # three lease lengths: only heartbeats keep it

    enqueue(clean, "slow")
    run_worker(registry, lease_seconds=0.5, concurrency=2)
    wait_for(lambda: jobs(clean)[0].state == "completed")
    assert runs == [1]


def test_recurring_slot_runs_once_across_workers(clean: Backend, run_worker: Callable[..., Worker]) -> None:
    registry = JobRegistry()
    slots: list[str] = []
    lock = threading.Lock()

    @registry.job("tick")
    def tick(ctx: JobContext) -> None:
        with lock:
            slots.append(ctx.args["slot"])

    registry.every("ticker", "tick", "@every 1s")
    for _ in range(3):
        run_worker(registry, lease_seconds=0.3)
    time.sleep(3.5)
    with lock:
        seen = list(slots)
    assert len(seen) >= 2
    assert len(seen) == len(set(seen))  # no slot ran twice, though three workers scheduled it


def test_stop_releases_unfinished_jobs(clean: Backend) -> None:
    registry = JobRegistry()
    started = threading.Event()

    @registry.job("stuck")
    def stuck(ctx: JobContext) -> None:
        started.set()
        time.sleep(3)

    job_id = enqueue(clean, "stuck")
    w = Worker(clean.db, registry, poll_interval=0.05, lease_seconds=30, shutdown_grace=0.2)
    w.start()
    assert started.wait(10)
    w.stop()
    job = jobs(clean)[0]
    assert (job.id, job.state, job.attempts, job.locked_by) == (job_id, "available", 0, None)


def test_discard_and_depth(clean: Backend) -> None:
    job_id = enqueue(clean, "k", queue="bulk")
    with unit_of_work(clean.db.writer) as session:
        assert queue.depth(session) == {("bulk", "available"): 1}
        assert queue.discard(session, job_id)  # type: ignore[arg-type]
        assert not queue.retry(session, 10**9)
        assert queue.depth(session) == {("bulk", "cancelled"): 1}


def test_retry_of_a_job_whose_twin_waits_merges_into_the_twin(clean: Backend) -> None:
    lease = timedelta(seconds=30)
    first = enqueue(clean, "deliver", unique_key="deliver:contact:1")
    with unit_of_work(clean.db.writer) as session:
        running = queue.claim(session, "w", None, lease=lease)
    assert running is not None
    assert running.id == first
    twin = enqueue(clean, "deliver", unique_key="deliver:contact:1")  # a new trigger while it runs
    assert twin is not None
    with unit_of_work(clean.db.writer) as session:
        assert queue.fail(session, running, "w", "receiver down", retry_in=60) == "merged"
    by_id = {j.id: j for j in jobs(clean)}
    assert by_id[first].state == "cancelled"
    assert f"waiting job {twin}" in (by_id[first].last_error or "")
    assert by_id[twin].state == "available"
    assert by_id[twin].attempts == 1
    assert by_id[twin].run_at > utcnow() + timedelta(seconds=50)  # the backoff is kept
    assert by_id[twin].errors[-1]["error"] == "receiver down"
    # the same holds for a lease that expires and for a release
    with unit_of_work(clean.db.writer) as session:
        session.execute(update(Job).where(Job.id == twin).values(run_at=utcnow()))
        again = queue.claim(session, "w2", None, lease=lease)
    assert again is not None
    third = enqueue(clean, "deliver", unique_key="deliver:contact:1")
    with unit_of_work(clean.db.writer) as session:
        session.execute(
            update(Job).where(Job.id == twin).values(locked_until=utcnow() - timedelta(seconds=1))
        )
        assert queue.rescue_expired(session) == 1
    states = {j.id: j.state for j in jobs(clean)}
    assert (states[twin], states[third]) == ("cancelled", "available")


def test_unique_enqueue_survives_prepared_statements(clean: Backend) -> None:
    """psycopg prepares a statement after five executions; the ON CONFLICT inference must still work."""
    for n in range(12):
        enqueue(clean, "events.dispatch", unique_key="events.dispatch")
        assert len(jobs(clean)) == 1, n

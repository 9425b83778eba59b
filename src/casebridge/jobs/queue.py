"""Queue operations on the ``jobs`` table. Every function takes the caller's session and only flushes.

- ``enqueue`` runs inside the caller's transaction: the job exists if and only if the change commits.
- ``claim`` takes one due job: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single writer lock on
  SQLite. A job whose ``concurrency_key`` already has a running job is not claimable, and a partial
  unique index makes that a database guarantee even when two workers race.
- Every state change after the claim is guarded by ``locked_by``: a worker that lost its lease (it
  stalled past ``locked_until`` and the job was rescued) cannot overwrite the job's newer state.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, delete, exists, func, literal_column, or_, select, text, update
from sqlalchemy.orm import Session

from casebridge.db.session import dialect_insert
from casebridge.db.types import utcnow
from casebridge.jobs.notify import mark_enqueued
from casebridge.models.job import AVAILABLE, CANCELLED, COMPLETED, DEAD, RUNNING, Job

_WAITING = "state = 'available'"  # the predicate of the partial unique index uq_jobs_unique_key_waiting
INTERACTIVE = 0  # a person is waiting: run first
DEFAULT_PRIORITY = 100
BULK = 200  # backfills, reconciles: run when nothing else waits
MAX_ERRORS_KEPT = 10


OnDead = Callable[[Session, Job], None]


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    queue: str
    args: dict[str, Any]
    attempt: int
    max_attempts: int
    concurrency_key: str | None
    run_at: datetime | None = None  # when it was due; started_at - run_at is its wait (metrics)
    started_at: datetime | None = None


def enqueue(
    session: Session,
    kind: str,
    args: dict[str, Any] | None = None,
    *,
    queue: str = "default",
    priority: int = DEFAULT_PRIORITY,
    run_at: datetime | None = None,
    unique_key: str | None = None,
    concurrency_key: str | None = None,
    max_attempts: int = 20,
    expedite: bool = False,
) -> int | None:
    """Add a job in the caller's transaction. Returns its id, or None when an identical job
    (same ``unique_key``) is already waiting. With ``expedite``, an identical waiting job is brought
    forward to this one's run time and priority when they are sooner (level-triggered work: a new
    trigger means "look again now", even if the waiting job was snoozed or backing off)."""
    values = {
        "kind": kind,
        "args": args or {},
        "queue": queue,
        "priority": priority,
        "state": AVAILABLE,
        "run_at": run_at or utcnow(),
        "unique_key": unique_key,
        "concurrency_key": concurrency_key,
        "max_attempts": max_attempts,
        "attempts": 0,
        "errors": [],
        "created_at": utcnow(),
    }
    stmt = dialect_insert(session)(Job).values(**values)
    if unique_key is not None:
        # The predicate must be a literal: with a bound parameter PostgreSQL cannot match the partial
        # index once psycopg prepares the statement (a generic plan, after five executions).
        if expedite:
            least = func.least if session.get_bind().dialect.name == "postgresql" else func.min
            stmt = stmt.on_conflict_do_update(
                index_elements=["unique_key"],
                index_where=text(_WAITING),
                set_={
                    "run_at": least(_JOBS.c.run_at, stmt.excluded.run_at),
                    "priority": least(_JOBS.c.priority, stmt.excluded.priority),
                },
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=["unique_key"], index_where=text(_WAITING))
    job_id = session.scalar(stmt.returning(Job.id))
    if job_id is None:
        return None
    mark_enqueued(session)
    return int(job_id)


_JOBS = cast(Table, Job.__table__)
_CLAIM_COLUMNS = (
    _JOBS.c.id,
    _JOBS.c.kind,
    _JOBS.c.queue,
    _JOBS.c.args,
    _JOBS.c.attempts,
    _JOBS.c.max_attempts,
    _JOBS.c.concurrency_key,
    _JOBS.c.run_at,
    _JOBS.c.started_at,
)
_claim_statements: dict[tuple[str, bool], Any] = {}


def _claim_statement(dialect: str, by_queue: bool) -> Any:
    """Built once per (dialect, queue filter): a prebuilt Core statement on the table, executed with
    parameters, skips SQLAlchemy's per-call statement building, cache-key generation and ORM bulk-update
    bookkeeping, which cost more than the database round trip itself."""
    key = (dialect, by_queue)
    stmt = _claim_statements.get(key)
    if stmt is not None:
        return stmt
    running = _JOBS.alias("running")
    # State predicates are literals, not parameters, so that prepared (generic) plans on PostgreSQL
    # still match the partial indexes ``ix_jobs_claim*`` and ``uq_jobs_concurrency_key_running``.
    candidate = (
        select(_JOBS.c.id)
        .where(_JOBS.c.state == literal_column(f"'{AVAILABLE}'"), _JOBS.c.run_at <= bindparam("claim_now"))
        .where(
            or_(
                _JOBS.c.concurrency_key.is_(None),
                ~exists().where(
                    running.c.state == literal_column(f"'{RUNNING}'"),
                    running.c.concurrency_key == _JOBS.c.concurrency_key,
                ),
            )
        )
        .order_by(_JOBS.c.priority, _JOBS.c.run_at, _JOBS.c.id)
        .limit(1)
    )
    if by_queue:
        candidate = candidate.where(_JOBS.c.queue.in_(bindparam("claim_queues", expanding=True)))
    if dialect == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    stmt = (
        update(_JOBS)
        .where(_JOBS.c.id == candidate.scalar_subquery())
        .values(
            state=RUNNING,
            attempts=_JOBS.c.attempts + 1,
            locked_by=bindparam("claim_worker"),
            locked_until=bindparam("claim_until", type_=_JOBS.c.locked_until.type),
            started_at=bindparam("claim_started", type_=_JOBS.c.started_at.type),
        )
        .returning(*_CLAIM_COLUMNS)
    )
    _claim_statements[key] = stmt
    return stmt


def claim(
    session: Session, worker_id: str, queues: list[str] | None, *, lease: timedelta
) -> ClaimedJob | None:
    """Take the best due job, mark it running under this worker's lease, and return it."""
    now = utcnow()
    params: dict[str, Any] = {
        "claim_now": now,
        "claim_worker": worker_id,
        "claim_until": now + lease,
        "claim_started": now,
    }
    if queues:
        params["claim_queues"] = list(queues)
    stmt = _claim_statement(session.get_bind().dialect.name, bool(queues))
    row = session.execute(stmt, params).first()
    if row is None:
        return None
    return ClaimedJob(
        id=row.id,
        kind=row.kind,
        queue=row.queue,
        args=row.args,
        attempt=row.attempts,
        max_attempts=row.max_attempts,
        concurrency_key=row.concurrency_key,
        run_at=row.run_at,
        started_at=row.started_at,
    )


def _owned(job_id: int, worker_id: str) -> Any:
    return and_(Job.id == job_id, Job.state == RUNNING, Job.locked_by == worker_id)


_OWNED = and_(
    _JOBS.c.id == bindparam("done_id"),
    _JOBS.c.state == RUNNING,
    _JOBS.c.locked_by == bindparam("done_worker"),
)
_COMPLETE = (
    update(_JOBS)
    .where(_OWNED)
    .values(
        state=COMPLETED,
        finished_at=bindparam("done_at", type_=_JOBS.c.finished_at.type),
        locked_by=None,
        locked_until=None,
    )
)
_DELETE_COMPLETED = delete(_JOBS).where(_OWNED)


def complete(session: Session, job_id: int, worker_id: str, *, keep: bool = True) -> bool:
    params: dict[str, Any] = {"done_id": job_id, "done_worker": worker_id}
    if not keep:
        return _rowcount(session.execute(_DELETE_COMPLETED, params)) == 1
    params["done_at"] = utcnow()
    return _rowcount(session.execute(_COMPLETE, params)) == 1


def backoff_seconds(attempt: int, *, base: float = 1.0, cap: float = 3600.0) -> float:
    """Exponential backoff with full jitter in [0.5, 1.5) x base x 2^(attempt-1), capped."""
    raw: float = min(cap, base * 2 ** max(0, attempt - 1))
    return raw * (0.5 + random.random())


def _locked_row(session: Session, job_id: int, worker_id: str | None) -> Job | None:
    cond = Job.id == job_id
    if worker_id is not None:
        cond = _owned(job_id, worker_id)
    stmt = select(Job).where(cond)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def _requeue(session: Session, job: Job, *, run_at: datetime, attempts: int, last_error: str | None) -> str:
    """Make ``job`` available again at ``run_at``. If an identical job (same ``unique_key``) is already
    waiting, that one takes over this job's schedule and attempt count, and this one is closed as
    superseded: the unique key's promise (one waiting job per key) holds, and no retry is lost."""
    now = utcnow()
    job.locked_by = None
    job.locked_until = None
    if last_error is not None:
        job.last_error = last_error
    if job.unique_key is not None:
        twin_stmt = select(Job).where(
            Job.unique_key == job.unique_key, Job.state == AVAILABLE, Job.id != job.id
        )
        if session.get_bind().dialect.name == "postgresql":
            twin_stmt = twin_stmt.with_for_update()
        twin = session.scalar(twin_stmt)
        if twin is not None:
            twin.run_at = max(twin.run_at, run_at)
            twin.attempts = max(twin.attempts, attempts)
            twin.errors = [*job.errors, *twin.errors][-MAX_ERRORS_KEPT:]
            twin.last_error = job.last_error
            job.state = CANCELLED
            job.finished_at = now
            job.last_error = f"superseded by the identical waiting job {twin.id}"
            session.flush()
            return "merged"
    job.state = AVAILABLE
    job.run_at = run_at
    job.attempts = attempts
    session.flush()
    return AVAILABLE


def fail(
    session: Session,
    job: ClaimedJob,
    worker_id: str,
    error: str,
    *,
    retry_in: float | None = None,
    give_up: bool = False,
    on_dead: OnDead | None = None,
) -> str:
    """Record a failed attempt: retry later (``available``) or, when out of attempts, ``dead``."""
    row = _locked_row(session, job.id, worker_id)
    if row is None:
        return "lost"  # the lease was lost; whoever holds the job now decides
    now = utcnow()
    row.errors = [*row.errors, {"attempt": job.attempt, "at": now.isoformat(), "error": error[:2000]}][
        -MAX_ERRORS_KEPT:
    ]
    if give_up or job.attempt >= job.max_attempts:
        row.state, row.finished_at, row.last_error = DEAD, now, error[:2000]
        row.locked_by, row.locked_until = None, None
        session.flush()
        if on_dead is not None:
            on_dead(session, row)
        return DEAD
    delay = retry_in if retry_in is not None else backoff_seconds(job.attempt)
    return _requeue(
        session, row, run_at=now + timedelta(seconds=delay), attempts=row.attempts, last_error=error[:2000]
    )


def release(session: Session, job_id: int, worker_id: str, *, delay: float = 0.0) -> bool:
    """Give a claimed job back without counting the attempt (shutdown, snooze)."""
    row = _locked_row(session, job_id, worker_id)
    if row is None:
        return False
    _requeue(
        session, row, run_at=utcnow() + timedelta(seconds=delay), attempts=row.attempts - 1, last_error=None
    )
    return True


def heartbeat(session: Session, worker_id: str, job_ids: list[int], *, lease: timedelta) -> int:
    if not job_ids:
        return 0
    result = session.execute(
        update(Job)
        .where(Job.id.in_(job_ids), Job.state == RUNNING, Job.locked_by == worker_id)
        .values(locked_until=utcnow() + lease)
    )
    return _rowcount(result)


def rescue_expired(session: Session, on_dead: OnDead | None = None) -> int:
    """Jobs whose worker died (lease expired) run again, or go dead when out of attempts."""
    now = utcnow()
    note = "the worker running this job stopped heartbeating (killed or stalled); lease expired"
    stmt = select(Job).where(Job.state == RUNNING, Job.locked_until < now).limit(500)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    rows = list(session.scalars(stmt))
    for row in rows:
        if row.attempts >= row.max_attempts:
            row.state, row.finished_at, row.last_error = DEAD, now, note
            row.locked_by, row.locked_until = None, None
            session.flush()
            if on_dead is not None:
                on_dead(session, row)
        else:
            _requeue(session, row, run_at=now, attempts=row.attempts, last_error=note)
    session.flush()
    return len(rows)


def retry(session: Session, job_id: int) -> bool:
    """Put a dead (or cancelled) job back in the queue with fresh attempts."""
    row = _locked_row(session, job_id, None)
    if row is None or row.state not in (DEAD, CANCELLED):
        return False
    row.finished_at = None
    _requeue(session, row, run_at=utcnow(), attempts=0, last_error=None)
    mark_enqueued(session)
    return True


def discard(session: Session, job_id: int) -> bool:
    """Cancel a job that is waiting or dead; a running job cannot be discarded."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state.in_((AVAILABLE, DEAD)))
        .values(state=CANCELLED, finished_at=utcnow())
    )
    return _rowcount(result) == 1


def prune_finished(session: Session, older_than: timedelta) -> int:
    result = session.execute(
        delete(Job).where(Job.state.in_((COMPLETED, CANCELLED)), Job.finished_at < utcnow() - older_than)
    )
    return _rowcount(result)


def depth(session: Session) -> dict[tuple[str, str], int]:
    """Jobs by (queue, state), for metrics and the CLI."""
    rows = session.execute(select(Job.queue, Job.state, func.count()).group_by(Job.queue, Job.state))
    return {(q, s): int(n) for q, s, n in rows}


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)

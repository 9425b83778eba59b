"""The worker: threads that claim and run jobs, and one maintenance thread.

Maintenance, every tick: extend the leases of the jobs this worker runs (heartbeat), rescue jobs
whose worker died (expired lease), enqueue due recurring slots (once per slot across all workers),
and prune old finished jobs. A worker is embedded in ``casebridge serve`` or runs alone as
``casebridge worker``; any number of them may share one PostgreSQL database.

Stopping (SIGTERM): claim nothing more, let running jobs finish for a grace period, then give the
leases of any job still running back to the queue so another worker takes it at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from casebridge.config import Settings
from casebridge.db.session import Database, dialect_insert, unit_of_work
from casebridge.db.types import utcnow
from casebridge.jobs import notify, queue
from casebridge.jobs.errors import GiveUp, RetryLater, Snooze
from casebridge.jobs.registry import JobRegistry, RecurringTask
from casebridge.models.job import Job, RecurringSlot
from casebridge.observability.jobs import job_finished, job_scope

log = logging.getLogger("casebridge.jobs")


@dataclass
class JobContext:
    """What a handler receives. Handlers open their own transactions with ``unit_of_work()``."""

    job: queue.ClaimedJob
    db: Database
    settings: Settings | None
    worker_id: str

    @property
    def args(self) -> dict[str, Any]:
        return self.job.args

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        with unit_of_work(self.db.writer) as session:
            yield session


class Worker:
    def __init__(
        self,
        db: Database,
        registry: JobRegistry,
        *,
        settings: Settings | None = None,
        queues: list[str] | None = None,
        concurrency: int = 4,
        lease_seconds: float = 30.0,
        poll_interval: float = 0.5,
        shutdown_grace: float = 25.0,
        prune_after: timedelta = timedelta(days=1),
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.settings = settings
        self.queues = queues
        self.concurrency = concurrency
        self.lease = timedelta(seconds=lease_seconds)
        self.poll_interval = poll_interval
        self.shutdown_grace = shutdown_grace
        self.prune_after = prune_after
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stopping = threading.Event()
        self._wake = notify.Waker()
        self._threads: list[threading.Thread] = []
        self._running: dict[int, queue.ClaimedJob] = {}
        self._running_lock = threading.Lock()
        self._next_slot: dict[str, datetime | None] = {}
        self.processed = 0

    # lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        notify.subscribe(self._wake)
        if self.db.dialect == "postgresql":  # wake-ups from enqueues in other processes
            url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            notify.PgListener(url, self._wake, self._stopping).start()
        for n in range(self.concurrency):
            t = threading.Thread(target=self._run_loop, name=f"cb-worker-{n}", daemon=True)
            t.start()
            self._threads.append(t)
        m = threading.Thread(target=self._maintenance_loop, name="cb-worker-maint", daemon=True)
        m.start()
        self._threads.append(m)
        log.info(
            "worker %s started: %d threads, queues %s", self.worker_id, self.concurrency, self.queues or "all"
        )

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + self.shutdown_grace
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._running_lock:
            leftover = list(self._running)
        if leftover:
            with unit_of_work(self.db.writer) as session:
                for job_id in leftover:
                    queue.release(session, job_id, self.worker_id)
            log.warning("worker %s released %d unfinished jobs on shutdown", self.worker_id, len(leftover))
        notify.unsubscribe(self._wake)
        log.info("worker %s stopped", self.worker_id)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # claiming and running ---------------------------------------------------------------------

    def _claim(self) -> queue.ClaimedJob | None:
        try:
            with unit_of_work(self.db.writer) as session:
                return queue.claim(session, self.worker_id, self.queues, lease=self.lease)
        except IntegrityError:
            return None  # lost a race for a concurrency key; try again at once
        except SQLAlchemyError as exc:  # unavailable, or not migrated yet: back off, never die
            log.warning("claim failed: %s", getattr(exc, "orig", exc))
            self._stopping.wait(1.0)
            return None

    def _run_loop(self) -> None:
        """Claim, run, record; after a job, the outcome and the next claim share one transaction."""
        idle = 0.01
        job: queue.ClaimedJob | None = None
        while not self._stopping.is_set():
            if job is None:
                seen = self._wake.count  # anything enqueued after this makes the wait return at once
                job = self._claim()
                if job is None:
                    self._wake.wait(seen, timeout=idle)
                    idle = min(self.poll_interval, idle * 2)
                    continue
                self._track(job)
            idle = 0.01
            current, job = job, None
            try:
                with job_scope(current):  # observability: job ids on log lines, wait time
                    job = self._execute(current)
            except Exception:  # never let a worker thread die; the lease expires and the job reruns
                log.exception("job %s %s: the worker failed around it", current.id, current.kind)
            finally:
                with self._running_lock:
                    self._running.pop(current.id, None)

    def _track(self, job: queue.ClaimedJob) -> None:
        with self._running_lock:
            self._running[job.id] = job

    def _execute(self, job: queue.ClaimedJob) -> queue.ClaimedJob | None:
        """Run ``job`` and record its outcome; returns the next job, claimed in the same transaction."""
        spec = self.registry.get(job.kind)
        started = time.monotonic()
        error: str | None = None
        retry_in: float | None = None
        snooze: float | None = None
        give_up = False
        try:
            if spec is None:
                raise GiveUp(f"no handler is registered for job kind {job.kind!r}")
            spec.handler(JobContext(job, self.db, self.settings, self.worker_id))
        except Snooze as exc:
            snooze = exc.seconds
        except GiveUp as exc:
            error, give_up = f"gave up: {exc}", True
        except RetryLater as exc:
            error, retry_in = str(exc), exc.seconds
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
            if spec is not None:
                retry_in = queue.backoff_seconds(job.attempt, base=spec.backoff_base, cap=spec.backoff_cap)
            log.warning("job %s %s attempt %d failed: %s", job.id, job.kind, job.attempt, exc)
        ran = time.monotonic() - started

        def record(session: Session) -> str:
            if snooze is not None:
                queue.release(session, job.id, self.worker_id, delay=snooze)
                return "snoozed"
            if error is not None:
                return queue.fail(
                    session,
                    job,
                    self.worker_id,
                    error,
                    retry_in=retry_in,
                    give_up=give_up,
                    on_dead=self._on_dead,
                )
            queue.complete(session, job.id, self.worker_id, keep=spec.keep_completed if spec else True)
            return "completed"

        outcome, following = self._finish(record, claim_next=True)
        job_finished(job.kind, outcome, ran)  # observability: run time and outcome
        if outcome == "completed":
            self.processed += 1
        log.debug("job %s %s %s in %.3fs", job.id, job.kind, outcome, time.monotonic() - started)
        return following

    def _finish(
        self, record: Callable[[Session], str], *, claim_next: bool = False
    ) -> tuple[str, queue.ClaimedJob | None]:
        """Record an outcome, retrying while the database is unavailable. With ``claim_next``, also
        claim the next job in the same transaction (one commit per job instead of two)."""
        for attempt in range(5):
            try:
                with unit_of_work(self.db.writer) as session:
                    outcome = record(session)
                    following = None
                    if claim_next and not self._stopping.is_set():
                        following = queue.claim(session, self.worker_id, self.queues, lease=self.lease)
                if following is not None:
                    self._track(following)
                return outcome, following
            except IntegrityError as exc:  # the claim raced for a concurrency key, or an identical job
                log.debug("recording a job outcome raced (try %d): %s", attempt + 1, exc.orig)
                claim_next = False  # record alone; the run loop claims afresh
            except OperationalError as exc:  # unavailable or busy
                log.warning("recording a job outcome failed (try %d): %s", attempt + 1, exc.orig)
                time.sleep(0.05 * 2**attempt)
            except Exception:
                log.exception("recording a job outcome failed; its lease will expire and it will run again")
                return "unrecorded", None
        log.error("could not record a job outcome; its lease will expire and it will run again")
        return "unrecorded", None

    # maintenance --------------------------------------------------------------------------------

    def _maintenance_loop(self) -> None:
        last_prune = 0.0
        tick = max(0.05, min(1.0, self.lease.total_seconds() / 3))
        while not self._stopping.wait(tick):
            try:
                self.maintain(prune=time.monotonic() - last_prune > 3600)
                if time.monotonic() - last_prune > 3600:
                    last_prune = time.monotonic()
            except SQLAlchemyError as exc:
                log.warning("maintenance skipped: %s", getattr(exc, "orig", exc))
            except Exception:
                log.exception("maintenance failed")

    def maintain(self, *, prune: bool = False) -> None:
        with self._running_lock:
            mine = list(self._running)
        with unit_of_work(self.db.writer) as session:
            queue.heartbeat(session, self.worker_id, mine, lease=self.lease)
            rescued = queue.rescue_expired(session, on_dead=self._on_dead)
            if prune:
                queue.prune_finished(session, self.prune_after)
        if rescued:
            log.warning("rescued %d jobs whose worker stopped heartbeating", rescued)
            notify.wake_local_workers()
        for task in self.registry.recurring:
            self._schedule(task)

    def _on_dead(self, session: Session, row: Job) -> None:
        """Run the kind's ``on_dead`` in a savepoint: if it fails, the job still goes dead."""
        spec = self.registry.get(row.kind)
        if spec is None or spec.on_dead is None:
            return
        try:
            with session.begin_nested():
                spec.on_dead(session, dict(row.args), row.last_error or "")
        except Exception:
            log.exception("job %s %s: its on_dead hook failed", row.id, row.kind)

    def _schedule(self, task: RecurringTask) -> None:
        now = utcnow()
        due = self._next_slot.get(task.name)
        if due is not None and now < due:
            return
        slot = task.schedule.latest_at_or_before(now)
        self._next_slot[task.name] = task.schedule.next_after(now)
        if slot is None:
            return
        with unit_of_work(self.db.writer) as session:
            if enqueue_slot(session, task, slot) is not None:
                log.info("recurring %s: enqueued slot %s", task.name, slot.isoformat())


def enqueue_slot(session: Session, task: RecurringTask, slot: datetime) -> int | None:
    """Enqueue a recurring task's slot unless some worker already did (the slot row is the guard)."""
    stmt = dialect_insert(session)(RecurringSlot).values(name=task.name, slot_at=slot, created_at=utcnow())
    inserted = session.scalar(stmt.on_conflict_do_nothing().returning(RecurringSlot.name))
    if inserted is None:
        return None
    job_id = queue.enqueue(
        session,
        task.kind,
        {**task.args, "slot": slot.isoformat()},
        queue=task.queue,
        priority=task.priority,
    )
    session.get(RecurringSlot, (task.name, slot)).job_id = job_id  # type: ignore[union-attr]
    return job_id

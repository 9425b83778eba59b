"""Wake workers as soon as a transaction that enqueued jobs commits.

- Workers in the same process (the embedded worker of ``casebridge serve``) are woken by an
  after-commit hook, without a database round trip.
- On PostgreSQL, an enqueueing transaction also sends ``NOTIFY casebridge_jobs`` (delivered by the
  server at commit, dropped on rollback), and every worker process LISTENs on its own connection, so
  workers on other processes and machines start the job at once instead of at their next poll.
- Polling (at most ``poll_interval`` late) remains the safety net: a lost notification delays a job,
  never loses it.

A ``Waker`` counts wake-ups instead of being a flag: a worker thread remembers the count it saw
before it looked for work and sleeps only if nothing was enqueued since, so a wake-up that lands
while a thread is busy claiming is never lost to a ``clear()``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from sqlalchemy import event, text
from sqlalchemy.orm import Session

ENQUEUED = "casebridge.jobs_enqueued"
NOTIFIED = "casebridge.jobs_notified"
CHANNEL = "casebridge_jobs"
log = logging.getLogger("casebridge.jobs")


class Wakeable(Protocol):
    def set(self) -> None: ...


class Waker:
    """A wake-up counter that threads can sleep on."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def set(self) -> None:
        with self._cond:
            self._count += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Sleep until the count moves past ``seen`` or ``timeout`` passes; return the count."""
        with self._cond:
            if self._count == seen:
                self._cond.wait(timeout)
            return self._count


_targets: set[Wakeable] = set()
_lock = threading.Lock()


def subscribe(wake: Wakeable) -> None:
    with _lock:
        _targets.add(wake)


def unsubscribe(wake: Wakeable) -> None:
    with _lock:
        _targets.discard(wake)


def wake_local_workers() -> None:
    with _lock:
        targets = list(_targets)
    for wake in targets:
        wake.set()


def mark_enqueued(session: Session) -> None:
    """Called by ``queue.enqueue``: wake local workers at commit, and remote ones on PostgreSQL."""
    session.info[ENQUEUED] = True
    if not session.info.get(NOTIFIED) and session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))  # PostgreSQL folds repeats within a transaction
        session.info[NOTIFIED] = True


def _after_commit(session: Session) -> None:
    session.info.pop(NOTIFIED, None)
    if session.info.pop(ENQUEUED, False):
        wake_local_workers()


def _after_rollback(session: Session, *_: Any) -> None:
    session.info.pop(ENQUEUED, None)
    session.info.pop(NOTIFIED, None)


event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_rollback", _after_rollback)


class PgListener:
    """A thread holding one PostgreSQL connection that LISTENs on ``casebridge_jobs`` and wakes this
    process's workers on each notification. It reconnects with a pause if the connection drops."""

    def __init__(self, url: str, wake: Wakeable, stopping: threading.Event) -> None:
        self.url = url
        self.wake = wake
        self.stopping = stopping
        self.thread = threading.Thread(target=self._run, name="cb-worker-listen", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        import psycopg

        while not self.stopping.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.wake.set()  # anything enqueued while we were not listening
                    while not self.stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.wake.set()
            except Exception as exc:  # the database went away: poll meanwhile, retry shortly
                log.warning("job notifications unavailable (%s); polling until reconnected", exc)
                self.stopping.wait(2.0)

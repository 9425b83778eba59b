"""Wake the workers of this process as soon as a transaction that enqueued jobs commits.

Workers in other processes poll (at most ``poll_interval`` late); workers in the same process (the
embedded worker of ``casebridge serve``) start the job at once.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

ENQUEUED = "casebridge.jobs_enqueued"
_events: set[threading.Event] = set()
_lock = threading.Lock()


def subscribe(wake: threading.Event) -> None:
    with _lock:
        _events.add(wake)


def unsubscribe(wake: threading.Event) -> None:
    with _lock:
        _events.discard(wake)


def wake_local_workers() -> None:
    with _lock:
        for wake in _events:
            wake.set()


def _after_commit(session: Session) -> None:
    if session.info.pop(ENQUEUED, False):
        wake_local_workers()


def _after_rollback(session: Session, *_: Any) -> None:
    session.info.pop(ENQUEUED, None)


event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_rollback", _after_rollback)

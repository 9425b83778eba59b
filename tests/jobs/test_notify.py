"""Wake-ups: the counting Waker, and PostgreSQL LISTEN/NOTIFY between processes."""

from __future__ import annotations

import threading

import pytest

from casebridge.db.session import unit_of_work
from casebridge.jobs import notify, queue
from tests.conftest import Backend


def test_a_wake_up_that_lands_before_the_wait_is_not_lost() -> None:
    waker = notify.Waker()
    seen = waker.count
    waker.set()  # lands while the thread is busy (claiming), before it sleeps
    assert waker.wait(seen, timeout=60) == seen + 1  # returns at once instead of sleeping 60 s


def test_every_waiting_thread_wakes() -> None:
    waker = notify.Waker()
    seen = waker.count
    woke: list[int] = []
    ready = threading.Barrier(4)

    def sleeper() -> None:
        ready.wait()
        woke.append(waker.wait(seen, timeout=60))

    threads = [threading.Thread(target=sleeper) for _ in range(3)]
    for t in threads:
        t.start()
    ready.wait()
    waker.set()
    for t in threads:
        t.join(timeout=60)
    assert woke == [seen + 1] * 3


def test_committed_enqueues_notify_other_processes_and_rollbacks_do_not(clean: Backend) -> None:
    if clean.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite the one process wakes its own workers")
    waker = notify.Waker()  # not subscribed to local wake-ups: only a notification can move it
    stopping = threading.Event()
    url = clean.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    listener = notify.PgListener(url, waker, stopping)
    listener.start()
    try:
        assert waker.wait(0, timeout=30) == 1  # listening (it wakes once on connecting)

        session = clean.db.writer()
        queue.enqueue(session, "test.record", {})
        session.rollback()  # a NOTIFY in a rolled-back transaction is never delivered
        session.close()
        with unit_of_work(clean.db.writer) as session:
            for _ in range(3):  # three enqueues, one transaction: one notification
                queue.enqueue(session, "test.record", {})

        assert waker.wait(1, timeout=30) == 2
        with unit_of_work(clean.db.writer) as session:
            queue.enqueue(session, "test.record", {})
        assert waker.wait(2, timeout=30) == 3
        assert waker.wait(3, timeout=2) == 3  # and nothing else arrives (the rollback sent nothing)
    finally:
        stopping.set()
        listener.thread.join(timeout=10)

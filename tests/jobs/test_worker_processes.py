"""Worker processes: killed with SIGKILL mid-batch, and four of them sharing PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casebridge.db.session import unit_of_work
from casebridge.jobs import queue
from casebridge.models import Event, Job
from tests.conftest import Backend

ROOT = Path(__file__).resolve().parents[2]
CASEBRIDGE = str(Path(sys.executable).parent / "casebridge")


def start_worker(
    backend: Backend, log: Path, *, concurrency: int = 4, lease: float = 1.0
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CASEBRIDGE_DATABASE_URL": backend.url,
        "CASEBRIDGE_DATA_DIR": str(backend.settings.data_dir),
        "CASEBRIDGE_JOB_MODULES": "tests.jobs.sample_jobs",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),  # this checkout first
    }
    with log.open("ab") as sink:  # a file, not a pipe: a chatty worker can never block on a full pipe
        return subprocess.Popen(
            [CASEBRIDGE, "worker", "--concurrency", str(concurrency), "--lease", str(lease)],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def states(backend: Backend) -> dict[str, int]:
    with unit_of_work(backend.db.reader) as session:
        rows = session.execute(
            select(Job.state, func.count()).where(Job.kind.like("test.%")).group_by(Job.state)
        )
        return {s: int(n) for s, n in rows}


def wait_until(
    predicate: Callable[[], bool], timeout: float, procs: list[subprocess.Popen[bytes]], log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            if p.poll() is not None and p.returncode not in (0, -signal.SIGKILL):
                raise AssertionError(f"worker exited {p.returncode}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; worker log: {log.read_text()[-2000:]}")
        time.sleep(0.05)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_sigkill_mid_batch_loses_no_job(clean: Backend, tmp_path: Path) -> None:
    log = tmp_path / "workers.log"
    total = 120
    with unit_of_work(clean.db.writer) as session:
        ids = [queue.enqueue(session, "test.record", {"sleep": 0.03}) for _ in range(total)]
    first = start_worker(clean, log, lease=1.0)
    procs = [first]
    try:
        wait_until(lambda: states(clean).get("completed", 0) >= 20, 60, procs, log)
        first.send_signal(signal.SIGKILL)  # mid-batch: some jobs are running, unacknowledged
        first.wait()
        after_kill = states(clean)
        assert after_kill.get("completed", 0) < total
        assert after_kill.get("running", 0) > 0  # jobs were in flight, leased to the dead worker
        second = start_worker(clean, log, lease=1.0)
        procs.append(second)
        wait_until(lambda: states(clean) == {"completed": total}, 90, procs, log)
    finally:
        stop(procs)
    with unit_of_work(clean.db.reader) as session:
        ran = set(session.scalars(select(Event.entity_id).where(Event.type == "test.job_ran")))
    assert ran == {str(i) for i in ids}  # every job's effect happened (at least once)
    with unit_of_work(clean.db.reader) as session:
        rescued = session.scalar(select(func.count()).select_from(Job).where(Job.attempts >= 2))
    assert rescued  # the in-flight jobs ran again after their lease expired


def test_per_key_exclusivity_with_four_worker_processes(clean: Backend, tmp_path: Path) -> None:
    log = tmp_path / "workers.log"
    if clean.name != "postgresql":
        pytest.skip("several worker processes share one database in production on PostgreSQL")
    keys = [f"matter:{n}" for n in range(6)]
    with unit_of_work(clean.db.writer) as session:
        for round_ in range(10):
            for key in keys:
                queue.enqueue(session, "test.keyed", {"key": key, "sleep": 0.02}, concurrency_key=key)
            queue.enqueue(session, "test.record", {"n": round_, "sleep": 0})
    total = 10 * len(keys) + 10
    procs = [start_worker(clean, log, concurrency=4, lease=5.0) for _ in range(4)]
    try:
        wait_until(lambda: states(clean) == {"completed": total}, 120, procs, log)
    finally:
        stop(procs)
    with unit_of_work(clean.db.reader) as session:
        rows = [e.changes for e in session.scalars(select(Event).where(Event.type == "test.keyed_ran"))]
        workers = set(session.scalars(select(Job.locked_by)))  # cleared on completion
    assert workers == {None}
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        by_key[r["key"]].append((r["start"], r["end"]))
    assert sorted(by_key) == sorted(keys)
    for key, spans in by_key.items():
        spans.sort()
        assert len(spans) == 10, key
        for (_, end), (start, _) in pairwise(spans):
            assert start >= end, f"two jobs for {key} overlapped"

"""Job-queue throughput: no-op jobs drained by `casebridge worker` processes, and by procrastinate's.

For each configuration a fresh database is made (SQLite: a new file; PostgreSQL: a new database on
``--pg-url``, dropped afterwards), N no-op jobs are enqueued (not timed), then P worker processes are
started and the wall time from their start until the N-th job is recorded as done is measured by
polling the count every ``--poll`` seconds.

* ours:   ``casebridge worker --concurrency C`` (C threads per process), the job kind ``bench.noop``
          from bench/noop_jobs.py (CASEBRIDGE_JOB_MODULES, PYTHONPATH=bench/);
* theirs: ``procrastinate worker --concurrency C`` (C concurrent asyncio jobs per process), the
          ``async def`` task in bench/procrastinate_noop.py, on the same PostgreSQL server.

Both keep finished jobs (ours ``completed``, theirs ``succeeded``), as each does by default.

    .venv/bin/pip install -e '.[bench]'          # procrastinate and py-spy
    .venv/bin/python bench/jobs.py [--jobs 20000] [--processes 1,4] [--concurrency 4] [--repeat 1]

See bench/README.md ("Job queue benchmark") for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from casebridge.db import migrate
from casebridge.db.session import Database, unit_of_work
from casebridge.jobs import queue

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
BIN = Path(sys.executable).parent
KIND = "bench.noop"
DEFAULT_PG_URL = (
    os.environ.get("CASEBRIDGE_BENCH_PG_URL")
    or os.environ.get("CASEBRIDGE_TEST_PG_URL")
    or "postgresql://postgres@127.0.0.1:5432/test"
)


class Unavailable(Exception):
    pass


@dataclass
class Result:
    system: str
    db: str
    processes: int
    jobs: int
    seconds: float  # from starting the workers to the last job done
    first: float  # from starting the workers to the first job done (start-up)

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0

    @property
    def steady_rate(self) -> float:
        span = self.seconds - self.first
        return (self.jobs - 1) / span if span > 0 else 0.0


# --- the machine ------------------------------------------------------------------------------------


def machine(pg_url: str) -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    lines = [
        f"machine: {cpu}, {os.cpu_count()} logical CPUs{mem}, {platform.system()} {platform.release()}",
        f"load average before the runs: {_load()} (other work on the machine skews every figure)",
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
    ]
    try:
        with psycopg.connect(_libpq(pg_url), connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            lines.append(f"PostgreSQL {row[0] if row else '?'} at {_shown(pg_url)} (same machine)")
    except psycopg.Error:
        lines.append(f"PostgreSQL at {_shown(pg_url)}: unreachable")
    try:
        from importlib.metadata import version

        lines.append(f"procrastinate {version('procrastinate')}, casebridge {version('casebridge')}")
    except Exception:
        lines.append("procrastinate: not installed (pip install -e '.[bench]')")
    return lines


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


# --- databases --------------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    u = make_url(url)
    parts = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, "dbname": u.database}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def fresh_postgres(admin_url: str, prefix: str) -> Iterator[str]:
    try:
        admin = psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        raise Unavailable(f"PostgreSQL at {_shown(admin_url)} is unreachable ({str(exc).strip()})") from None
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(db: str, pg_url: str, prefix: str) -> Iterator[str]:
    if db == "postgresql":
        with fresh_postgres(pg_url, prefix) as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="cb-bench-jobs-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


def counter(url: str, sql: str) -> Callable[[], int]:
    """A function returning the number of finished jobs, on a connection of its own."""
    if url.startswith("sqlite"):
        path = make_url(url).database or ""
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)

        def count_sqlite() -> int:
            row = conn.execute(sql).fetchone()
            return int(row[0]) if row else 0

        return count_sqlite
    pg = psycopg.connect(_libpq(url), autocommit=True)

    def count_pg() -> int:
        row = pg.execute(sql).fetchone()  # type: ignore[arg-type]
        return int(row[0]) if row else 0

    return count_pg


def analyze(url: str, table: str) -> None:
    """Fresh planner statistics after the bulk enqueue, for both systems alike (autovacuum would get
    there on its own, at a time that differs between runs)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(make_url(url).database or "") as conn:
            conn.execute("ANALYZE")
        return
    with psycopg.connect(_libpq(url), autocommit=True) as pg:
        pg.execute(f"ANALYZE {table}")  # type: ignore[arg-type]


# --- running worker processes -----------------------------------------------------------------------


def drain(
    commands: list[list[str]],
    env: dict[str, str],
    count: Callable[[], int],
    jobs: int,
    *,
    poll: float,
    timeout: float,
    log: Path,
    profile: Path | None = None,
) -> tuple[float, float]:
    """Start the worker processes, wait until ``count()`` reaches ``jobs``, stop them.
    Returns (seconds to the last job, seconds to the first)."""
    procs: list[subprocess.Popen[bytes]] = []
    spy: subprocess.Popen[bytes] | None = None
    first = None
    with log.open("ab") as sink:
        started = time.perf_counter()
        for cmd in commands:
            procs.append(subprocess.Popen(cmd, env=env, cwd=BENCH_DIR, stdout=sink, stderr=subprocess.STDOUT))
    try:
        if profile is not None:
            spy = subprocess.Popen(
                [
                    str(BIN / "py-spy"),
                    "record",
                    "--pid",
                    str(procs[0].pid),
                    "--format",
                    "raw",
                    "--threads",
                    "--rate",
                    "200",
                    "-o",
                    str(profile),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        while True:
            done = count()
            now = time.perf_counter()
            if done and first is None:
                first = now - started
            if done >= jobs:
                return now - started, first or 0.0
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a worker exited with {p.returncode}; see {log}")
            if now - started > timeout:
                raise RuntimeError(f"timed out after {timeout:.0f} s with {done}/{jobs} done; see {log}")
            time.sleep(poll)
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _pythonpath() -> str:
    return os.pathsep.join([str(BENCH_DIR), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )


def run_ours(db: str, opts: argparse.Namespace, processes: int, log: Path) -> Result:
    with fresh_database(db, opts.pg_url, "cb_bench_jobs") as url:
        database = Database.from_url(url)
        try:
            migrate.upgrade(database.engine)
            with unit_of_work(database.writer) as session:
                for _ in range(opts.jobs):
                    queue.enqueue(session, KIND)
        finally:
            database.dispose()
        analyze(url, "jobs")
        with tempfile.TemporaryDirectory(prefix="cb-bench-data-") as data:
            env = {
                **os.environ,
                "CASEBRIDGE_DATABASE_URL": url,
                "CASEBRIDGE_DATA_DIR": data,
                "CASEBRIDGE_JOB_MODULES": "noop_jobs",
                "PYTHONPATH": _pythonpath(),
            }
            cmd = [
                str(BIN / "casebridge"),
                "worker",
                "--concurrency",
                str(opts.concurrency),
                "--log-format",
                "json",
            ]
            count = counter(url, f"SELECT count(*) FROM jobs WHERE kind = '{KIND}' AND state = 'completed'")
            profile = None
            if opts.py_spy and db == "postgresql" and processes == 1:
                profile = opts.py_spy / f"ours-{db}-{processes}.txt"
            seconds, first = drain(
                [cmd] * processes,
                env,
                count,
                opts.jobs,
                poll=opts.poll,
                timeout=opts.timeout,
                log=log,
                profile=profile,
            )
    return Result("casebridge", db, processes, opts.jobs, seconds, first)


async def _defer_theirs(conninfo: str, jobs: int) -> None:
    from procrastinate import PsycopgConnector

    sys.path.insert(0, str(BENCH_DIR))
    import procrastinate_noop

    with procrastinate_noop.app.replace_connector(PsycopgConnector(conninfo=conninfo)) as app:
        async with app.open_async():
            batch = 1000
            for start in range(0, jobs, batch):
                await procrastinate_noop.noop.batch_defer_async(
                    *[{} for _ in range(min(batch, jobs - start))]
                )


def run_theirs(opts: argparse.Namespace, processes: int, log: Path) -> Result:
    with fresh_database("postgresql", opts.pg_url, "pc_bench_jobs") as url:
        conninfo = _libpq(url)
        env = {**os.environ, "BENCH_PROCRASTINATE_CONNINFO": conninfo, "PYTHONPATH": _pythonpath()}
        procrastinate = str(BIN / "procrastinate")
        with log.open("ab") as sink:
            subprocess.run(
                [procrastinate, "--app=procrastinate_noop.app", "schema", "--apply"],
                env=env,
                cwd=BENCH_DIR,
                stdout=sink,
                stderr=subprocess.STDOUT,
                check=True,
            )
        asyncio.run(_defer_theirs(conninfo, opts.jobs))
        analyze(url, "procrastinate_jobs")
        cmd = [
            procrastinate,
            "--app=procrastinate_noop.app",
            "worker",
            "--concurrency",
            str(opts.concurrency),
        ]
        count = counter(
            url,
            f"SELECT count(*) FROM procrastinate_jobs WHERE task_name = '{KIND}' AND status = 'succeeded'",
        )
        profile = (
            opts.py_spy / f"theirs-postgresql-{processes}.txt" if opts.py_spy and processes == 1 else None
        )
        seconds, first = drain(
            [[*cmd, "--name", f"w{n}"] for n in range(processes)],
            env,
            count,
            opts.jobs,
            poll=opts.poll,
            timeout=opts.timeout,
            log=log,
            profile=profile,
        )
    return Result("procrastinate", "postgresql", processes, opts.jobs, seconds, first)


# --- the report -------------------------------------------------------------------------------------


def median_result(results: list[Result]) -> Result:
    """The run with the median time (its own start-up figure with it)."""
    ordered = sorted(results, key=lambda r: r.seconds)
    return ordered[len(ordered) // 2]


def table(results: list[Result]) -> str:
    theirs = {r.processes: r for r in results if r.system == "procrastinate"}
    headers = [
        "system",
        "db",
        "processes",
        "jobs",
        "seconds",
        "jobs/s",
        "start-up s",
        "steady jobs/s",
        "ours/theirs",
    ]
    rows: list[list[str]] = []
    for r in results:
        ratio = "-"
        if r.system == "casebridge" and r.db == "postgresql" and r.processes in theirs:
            ratio = f"{r.rate / theirs[r.processes].rate:.2f}"
        rows.append(
            [
                r.system,
                r.db,
                str(r.processes),
                str(r.jobs),
                f"{r.seconds:.2f}",
                f"{r.rate:.0f}",
                f"{r.first:.2f}",
                f"{r.steady_rate:.0f}",
                ratio,
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per configuration")
    ap.add_argument("--processes", default="1,4", help="worker process counts, comma-separated")
    ap.add_argument("--concurrency", type=int, default=4, help="jobs at once per process (both systems)")
    ap.add_argument("--backends", default="sqlite,postgresql", help="our databases, comma-separated")
    ap.add_argument("--systems", default="casebridge,procrastinate")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration; the median is shown")
    ap.add_argument("--pg-url", default=DEFAULT_PG_URL, help="a server where databases may be created")
    ap.add_argument("--poll", type=float, default=0.1, help="seconds between counts of finished jobs")
    ap.add_argument("--timeout", type=float, default=900, help="give up on a configuration after this")
    ap.add_argument(
        "--py-spy", type=Path, default=None, help="write py-spy raw profiles of 1-process runs here"
    )
    ap.add_argument("--log", type=Path, default=None, help="the workers' output (default: a temp file)")
    opts = ap.parse_args(argv)
    process_counts = [int(p) for p in opts.processes.split(",") if p.strip()]
    backends = [b.strip() for b in opts.backends.split(",") if b.strip()]
    systems = {s.strip() for s in opts.systems.split(",") if s.strip()}
    if opts.py_spy:
        if not shutil.which("py-spy", path=str(BIN)):
            ap.error("--py-spy needs py-spy (pip install -e '.[bench]')")
        opts.py_spy.mkdir(parents=True, exist_ok=True)
    log = opts.log or Path(tempfile.mkstemp(prefix="cb-bench-jobs-", suffix=".log")[1])

    for line in machine(opts.pg_url):
        print(line)
    print(
        f"{opts.jobs} no-op jobs per run, {opts.concurrency} concurrent jobs per process, "
        f"median of {opts.repeat} run(s); worker output in {log}\n",
        flush=True,
    )

    plan: list[tuple[str, str, int]] = []
    for n in process_counts:  # ours and theirs on PostgreSQL side by side, then SQLite
        if "casebridge" in systems and "postgresql" in backends:
            plan.append(("casebridge", "postgresql", n))
        if "procrastinate" in systems:
            plan.append(("procrastinate", "postgresql", n))
    if "casebridge" in systems and "sqlite" in backends:
        plan = [("casebridge", "sqlite", n) for n in process_counts] + plan

    results: list[Result] = []
    for system, db, n in plan:
        runs: list[Result] = []
        for _ in range(opts.repeat):
            try:
                r = run_ours(db, opts, n, log) if system == "casebridge" else run_theirs(opts, n, log)
            except Unavailable as exc:
                print(f"{system} on {db}: skipped: {exc}", flush=True)
                break
            runs.append(r)
            print(f"  {system:13} {db:10} x{n}: {r.seconds:7.2f} s  {r.rate:7.0f} jobs/s", flush=True)
        if runs:
            results.append(median_result(runs))
    print()
    print(table(results))
    print(f"\nload average after the runs: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

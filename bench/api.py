"""HTTP benchmark of the API against a constant-returning endpoint in the same server process.

For each backend (SQLite in a temporary directory; PostgreSQL in a fresh database created and dropped
here, skipped with a note when unreachable): migrate, make an admin token, start ONE uvicorn process
serving ``bench/server.py``, seed contacts and matters through the API, then drive each scenario with
N concurrent asyncio workers (httpx.AsyncClient) for a fixed time and report requests/s, p50/p99
latency and the ratio of requests/s to the ceiling measured in the same run.

    .venv/bin/python bench/api.py [--seconds 5] [--concurrency 16] [--backends sqlite,postgresql]

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import random
import secrets
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from casebridge.auth.service import create_token
from casebridge.db import migrate
from casebridge.db.session import Database, unit_of_work
from casebridge.kit.context import Role

BENCH_DIR = Path(__file__).resolve().parent
CEILING_PATH = "/_bench/ceiling"  # served by bench/server.py
DEFAULT_PG_URL = (
    os.environ.get("CASEBRIDGE_BENCH_PG_URL")
    or os.environ.get("CASEBRIDGE_TEST_PG_URL")
    or "postgresql://postgres@127.0.0.1:5432/test"
)
SCENARIOS = ("ceiling", "create_contact", "get_matter", "list_matters")
SEED_CONTACTS = 200
SEED_MATTERS = 60


class Unavailable(Exception):
    """The backend cannot be benchmarked here (PostgreSQL unreachable)."""


# --- results -------------------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    scenario: str
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: dict[str, int] = field(default_factory=dict)  # "status 500" / exception name -> count

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
        return ordered[rank - 1] * 1000


# --- databases -----------------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    u = make_url(url)
    parts = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, "dbname": u.database}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


@contextmanager
def sqlite_database(root: Path) -> Iterator[str]:
    yield f"sqlite:///{root / 'bench.db'}"


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    try:
        admin = psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        shown = make_url(admin_url).render_as_string(hide_password=True)
        raise Unavailable(f"PostgreSQL at {shown} is unreachable ({str(exc).strip()})") from None
    name = f"cb_bench_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(url: str) -> tuple[str, str]:
    """Migrate the database and issue an admin token; return (token, the database's version)."""
    db = Database.from_url(url)
    try:
        migrate.upgrade(db.engine)
        with unit_of_work(db.writer) as session:
            secret = create_token(session, name="bench", role=Role.ADMIN).secret
        with db.engine.connect() as conn:
            if db.dialect == "postgresql":
                version = f"PostgreSQL {conn.execute(text('SHOW server_version')).scalar_one()}"
            else:
                version = f"SQLite {conn.execute(text('select sqlite_version()')).scalar_one()}"
        return secret, version
    finally:
        db.dispose()


# --- the server ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running(
    cmd: list[str], env: dict[str, str], ready_url: str, what: str, *, log: Path | None = None
) -> Iterator[None]:
    """Run ``cmd`` (its output to ``log``, else ours) until the block ends, once ``ready_url`` answers
    200; then terminate it (kill after 15 s)."""
    with log.open("ab") if log is not None else contextlib.nullcontext() as sink:
        proc = subprocess.Popen(
            cmd, env=env, stdout=sink, stderr=subprocess.STDOUT if sink is not None else None
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not become ready within 30 s")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def uvicorn_server(url: str, data_dir: Path) -> Iterator[str]:
    """One uvicorn process serving bench/server.py against ``url``; yields its base URL."""
    port = free_port()
    env = {**os.environ, "CASEBRIDGE_DATABASE_URL": url, "CASEBRIDGE_DATA_DIR": str(data_dir)}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "server:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    base = f"http://127.0.0.1:{port}"
    with running(cmd, env, f"{base}/readyz", "the server"):
        yield base


# --- load ----------------------------------------------------------------------------------------------

Request = Callable[[], Awaitable[httpx.Response]]


def _ok(r: httpx.Response, status: int) -> None:
    if r.status_code != status:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}")


async def seed(client: httpx.AsyncClient, concurrency: int) -> list[str]:
    """Create the contacts and matters the scenarios read; return the matter ids."""
    sem = asyncio.Semaphore(concurrency)

    async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with sem:
            r = await client.post(path, json=body)
        _ok(r, 201)
        created: dict[str, Any] = r.json()
        return created

    contacts = await asyncio.gather(
        *(
            post(
                "/api/v1/contacts",
                {
                    "kind": "person",
                    "first_name": "Seed",
                    "last_name": f"Client {n:04d}",
                    "emails": [{"address": f"seed{n}@example.com"}],
                    "party_types": ["client"],
                },
            )
            for n in range(SEED_CONTACTS)
        )
    )
    matters = await asyncio.gather(
        *(
            post(
                "/api/v1/matters",
                {"title": f"Seed matter {n:03d}", "client_id": contacts[n % len(contacts)]["id"]},
            )
            for n in range(SEED_MATTERS)
        )
    )
    return [m["id"] for m in matters]


def scenario_requests(client: httpx.AsyncClient, matter_ids: list[str]) -> dict[str, tuple[Request, int]]:
    counter = itertools.count()

    def create_contact() -> Awaitable[httpx.Response]:
        n = next(counter)
        body = {
            "kind": "person",
            "first_name": "Bench",
            "last_name": f"Person {n}",
            "emails": [{"address": f"bench{n}@example.com"}],
        }
        return client.post("/api/v1/contacts", json=body)

    return {
        "ceiling": (lambda: client.get(CEILING_PATH), 200),
        "create_contact": (create_contact, 201),
        "get_matter": (lambda: client.get(f"/api/v1/matters/{random.choice(matter_ids)}"), 200),
        "list_matters": (lambda: client.get("/api/v1/matters", params={"limit": 50}), 200),
    }


async def drive(
    request: Request, status: int, seconds: float, concurrency: int
) -> tuple[list[float], dict[str, int], float]:
    """``concurrency`` workers send back-to-back requests until ``seconds`` have passed."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                r = await request()
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            elapsed = time.perf_counter() - start
            if r.status_code == status:
                latencies.append(elapsed)
            else:
                errors[f"status {r.status_code}"] = errors.get(f"status {r.status_code}", 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - started


async def bench_backend(backend: str, base: str, token: str, args: argparse.Namespace) -> list[Result]:
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=60
    ) as client:
        matter_ids = await seed(client, args.concurrency)
        requests = scenario_requests(client, matter_ids)
        results = []
        for name in SCENARIOS:
            request, status = requests[name]
            if args.warmup > 0:
                await drive(request, status, args.warmup, args.concurrency)
            latencies, errors, elapsed = await drive(request, status, args.seconds, args.concurrency)
            result = Result(backend, name, elapsed, latencies, errors)
            results.append(result)
            print(
                f"  {backend:<10} {name:<15} {result.requests:>7} requests  {result.rps:>8.0f} req/s"
                + (f"  errors: {errors}" if errors else ""),
                flush=True,
            )
        return results


def run_backend(backend: str, args: argparse.Namespace) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix=f"cb-bench-{backend}-") as tmp:
        root = Path(tmp)
        database = sqlite_database(root) if backend == "sqlite" else postgres_database(args.pg_url)
        with database as url:
            token, version = prepare(url)
            print(f"{backend}: {version}", flush=True)
            with uvicorn_server(url, root / "data") as base:
                return asyncio.run(bench_backend(backend, base, token, args))


# --- reporting -----------------------------------------------------------------------------------------


def machine_description() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import fastapi
    import uvicorn

    return [
        f"machine:   {cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}",
        f"python:    {platform.python_implementation()} {platform.python_version()}",
        f"server:    uvicorn {uvicorn.__version__}, 1 process; FastAPI {fastapi.__version__}",
        f"client:    httpx {httpx.__version__} AsyncClient, in the benchmark process (same machine)",
        f"sqlite:    {sqlite3.sqlite_version} (the library linked into this Python)",
    ]


def table(results: list[Result]) -> str:
    header = ("backend", "scenario", "requests", "req/s", "p50 ms", "p99 ms", "ratio to ceiling")
    rows = [header]
    ceilings = {r.backend: r.rps for r in results if r.scenario == "ceiling"}
    for r in results:
        ceiling = ceilings.get(r.backend) or float("nan")
        rows.append(
            (
                r.backend,
                r.scenario,
                str(r.requests),
                f"{r.rps:.0f}",
                f"{r.percentile_ms(50):.2f}",
                f"{r.percentile_ms(99):.2f}",
                f"{r.rps / ceiling:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="measured duration per scenario (default 5)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client workers (default 16)")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds before each scenario (default 1)"
    )
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql (default both)"
    )
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server to create the bench database on"
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")

    print("Casebridge API benchmark")
    for line in machine_description():
        print(line)
    print(
        f"settings:  {args.seconds:g} s per scenario after {args.warmup:g} s warm-up, {args.concurrency} concurrent "
        f"workers; seeded {SEED_CONTACTS} contacts and {SEED_MATTERS} matters per backend"
    )
    results: list[Result] = []
    notes: list[str] = []
    for backend in backends:
        try:
            backend_results = run_backend(backend, args)
        except Unavailable as exc:
            notes.append(f"{backend}: skipped: {exc}")
            print(f"NOTE: {backend} skipped: {exc}", flush=True)
            continue
        results.extend(backend_results)
    print()
    print(table(results))
    for note in notes:
        print(f"NOTE: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

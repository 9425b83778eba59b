"""Event → webhook delivery latency on loopback: how long after a change commits its receiver has it.

For each backend (SQLite in a temporary directory; PostgreSQL in a fresh database created and dropped
here, skipped with a note when unreachable): migrate, make an admin token, start ONE uvicorn process
serving ``casebridge.app:create_app`` with its embedded job worker (as ``casebridge serve`` runs), start
a receiver in this process that answers 200 at once and checks every signature, subscribe it to
``contact.*`` through the API, then create N contacts (paced, a few clients at a time) and time each
``contact.created`` event from the moment its 201 reached the client (and from the event's
``occurred_at``) to its arrival at the receiver.

    .venv/bin/python bench/events.py [--contacts 300] [--rate 25] [--concurrency 4] [--backends sqlite,postgresql]

Target: p99 under 250 ms. No test asserts on time; the figures are for people (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import DEFAULT_PG_URL, Unavailable, free_port, postgres_database, prepare, running, sqlite_database
from casebridge.db.session import Database, unit_of_work
from casebridge.models import Event, EventDelivery
from casebridge.webhooks.signing import verify

TARGET_P99_MS = 250.0
WARMUP_CONTACTS = 10


# --- the receiver ------------------------------------------------------------------------------------


@dataclass
class Arrival:
    perf: float  # time.perf_counter() on arrival (same clock as the client's t0)
    wall: float  # time.time() on arrival (compared with the server's occurred_at)
    event_id: int
    entity_id: str
    occurred_at: float
    attempt: int
    signature_ok: bool


@dataclass
class Receiver:
    secret: str = ""
    arrivals: list[Arrival] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def by_entity(self) -> dict[str, Arrival]:
        """The first arrival of each record's event."""
        with self.lock:
            out: dict[str, Arrival] = {}
            for a in self.arrivals:
                out.setdefault(a.entity_id, a)
            return out

    def wait_for(self, entity_ids: set[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not entity_ids <= {a.entity_id for a in self.arrivals}:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True


@contextmanager
def receiver_server(receiver: Receiver) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            perf, wall = time.perf_counter(), time.time()
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            event = json.loads(body)
            arrival = Arrival(
                perf=perf,
                wall=wall,
                event_id=int(self.headers["Casebridge-Event-Id"]),
                entity_id=event["entity_id"],
                occurred_at=datetime.fromisoformat(event["occurred_at"]).timestamp(),
                attempt=int(self.headers["Casebridge-Delivery-Attempt"]),
                signature_ok=verify(receiver.secret, body, self.headers.get("Casebridge-Signature", "")),
            )
            with receiver.changed:
                receiver.arrivals.append(arrival)
                receiver.changed.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/casebridge/events"
    finally:
        server.shutdown()
        server.server_close()


# --- the server --------------------------------------------------------------------------------------


@contextmanager
def casebridge_server(url: str, data_dir: Path) -> Iterator[str]:
    """``casebridge serve`` as it runs in production: one uvicorn process, embedded worker on."""
    port = free_port()
    env = {
        **os.environ,
        "CASEBRIDGE_DATABASE_URL": url,
        "CASEBRIDGE_DATA_DIR": str(data_dir),
        "CASEBRIDGE_EMBEDDED_WORKER": "true",
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "casebridge.app:create_app",
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


# --- the run -----------------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    version: str
    sent: int
    seconds: float  # from the first create to the last 201
    from_response_ms: list[float]
    from_occurred_ms: list[float]
    received: int
    duplicates: int
    retried: int
    bad_signatures: int
    create_ms: list[float]
    fan_out_ms: list[float]  # occurred_at -> the dispatcher wrote the delivery row
    send_ms: list[float]  # delivery row written -> arrival at the receiver


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def create_contacts(
    client: httpx.Client, n: int, rate: float, concurrency: int, tag: str
) -> tuple[dict[str, float], list[float], float]:
    """Create ``n`` contacts, request i not before ``i / rate`` s; returns ({id: t0}, create latencies
    in ms, seconds from the first request to the last response)."""
    t0: dict[str, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter()

    def one(i: int) -> None:
        if rate > 0:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        body = {"kind": "person", "first_name": "Bench", "last_name": f"{tag} {i:05d}"}
        sent = time.perf_counter()
        r = client.post("/api/v1/contacts", json=body)
        got = time.perf_counter()
        if r.status_code != 201:
            raise RuntimeError(f"create failed: {r.status_code} {r.text[:300]}")
        with lock:
            t0[r.json()["id"]] = got
            latencies.append((got - sent) * 1000)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for f in [pool.submit(one, i) for i in range(n)]:
            f.result()
    return t0, latencies, time.perf_counter() - start


def bench_backend(backend: str, url: str, version: str, token: str, data_dir: Path, args: Any) -> Result:
    receiver = Receiver()
    with receiver_server(receiver) as hook_url, casebridge_server(url, data_dir) as base:
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        with httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, limits=limits, timeout=60
        ) as client:
            r = client.post(
                "/api/v1/webhooks",
                json={"url": hook_url, "event_types": ["contact.*"], "description": "bench"},
            )
            if r.status_code != 201:
                raise RuntimeError(f"could not create the webhook: {r.status_code} {r.text[:300]}")
            receiver.secret = r.json()["secret"]
            warm, _, _ = create_contacts(client, WARMUP_CONTACTS, 0, 1, "Warmup")
            if not receiver.wait_for(set(warm), 30):
                raise RuntimeError("the warm-up events were not delivered within 30 s")
            t0, create_ms, seconds = create_contacts(
                client, args.contacts, args.rate, args.concurrency, "Run"
            )
            receiver.wait_for(set(t0), args.wait)
    first = receiver.by_entity()
    with receiver.lock:
        arrivals = [a for a in receiver.arrivals if a.entity_id in t0]
    from_response = [(first[e].perf - t) * 1000 for e, t in t0.items() if e in first]
    from_occurred = [(first[e].wall - first[e].occurred_at) * 1000 for e in t0 if e in first]
    fanned = fan_out_times(url)
    fan_out = [(fanned[e] - first[e].occurred_at) * 1000 for e in t0 if e in first and e in fanned]
    send = [(first[e].wall - fanned[e]) * 1000 for e in t0 if e in first and e in fanned]
    return Result(
        backend=backend,
        version=version,
        sent=len(t0),
        seconds=seconds,
        from_response_ms=from_response,
        from_occurred_ms=from_occurred,
        received=len(from_response),
        duplicates=len(arrivals) - len({a.event_id for a in arrivals}),
        retried=sum(1 for a in arrivals if a.attempt > 1),
        bad_signatures=sum(1 for a in arrivals if not a.signature_ok),
        create_ms=create_ms,
        fan_out_ms=fan_out,
        send_ms=send,
    )


def fan_out_times(url: str) -> dict[str, float]:
    """When the dispatcher wrote each contact.created event's delivery row (unix seconds, by record)."""
    db = Database.from_url(url)
    try:
        with unit_of_work(db.reader) as session:
            rows = session.execute(
                select(Event.entity_id, EventDelivery.created_at)
                .join(EventDelivery, EventDelivery.event_id == Event.id)
                .where(Event.type == "contact.created")
            )
            return {entity_id: created.timestamp() for entity_id, created in rows}
    finally:
        db.dispose()


def run_backend(backend: str, args: Any) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"cb-bench-events-{backend}-") as tmp:
        root = Path(tmp)
        database = sqlite_database(root) if backend == "sqlite" else postgres_database(args.pg_url)
        with database as url:
            token, version = prepare(url)
            print(f"{backend}: {version}", flush=True)
            return bench_backend(backend, url, version, token, root / "data", args)


# --- reporting ---------------------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "n/a"
    import uvicorn

    return [
        f"machine:   {cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}; "
        f"load average {load}",
        f"python:    {platform.python_implementation()} {platform.python_version()}; "
        f"sqlite {sqlite3.sqlite_version}; uvicorn {uvicorn.__version__}, httpx {httpx.__version__}",
    ]


def table(results: list[Result]) -> str:
    header = (
        "backend",
        "measured from",
        "received",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "p99 < 250",
    )
    rows = [header]
    for r in results:
        for label, values in (("201 at client", r.from_response_ms), ("occurred_at", r.from_occurred_ms)):
            p99 = percentile(values, 99)
            rows.append(
                (
                    r.backend,
                    label,
                    f"{r.received}/{r.sent}",
                    f"{percentile(values, 50):.1f}",
                    f"{percentile(values, 95):.1f}",
                    f"{p99:.1f}",
                    f"{max(values, default=float('nan')):.1f}",
                    "yes" if p99 < TARGET_P99_MS else "NO",
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
        "--contacts", type=int, default=300, help="contacts created per backend (default 300)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=25.0,
        help="creates per second, overall (default 25; 0: as fast as possible)",
    )
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent API clients (default 4)")
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the last deliveries (default 60)"
    )
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql (default both)"
    )
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server to create the database on"
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")

    print("Casebridge event → webhook delivery latency")
    for line in machine():
        print(line)
    pacing = f"{args.rate:g}/s" if args.rate > 0 else "unpaced"
    print(
        f"load:      {args.contacts} contacts per backend ({pacing}, {args.concurrency} concurrent clients) "
        f"after {WARMUP_CONTACTS} warm-up; one webhook on contact.*; the receiver answers 204 at once"
    )
    print("server:    one uvicorn process, create_app with its embedded worker (as `casebridge serve`)")
    results: list[Result] = []
    notes: list[str] = []
    for backend in backends:
        try:
            results.append(run_backend(backend, args))
        except Unavailable as exc:
            notes.append(f"{backend}: skipped: {exc}")
            print(f"NOTE: {backend} skipped: {exc}", flush=True)
    print()
    print(table(results))
    print()
    for r in results:
        print(
            f"{r.backend}: {r.sent} creates in {r.seconds:.1f} s ({r.sent / r.seconds:.0f}/s), create p50 "
            f"{percentile(r.create_ms, 50):.1f} ms p99 {percentile(r.create_ms, 99):.1f} ms; "
            f"{r.received} of {r.sent} events received, {r.duplicates} duplicates, {r.retried} retried "
            f"attempts, {r.bad_signatures} bad signatures"
        )
        print(
            f"{r.backend}: where the time goes (from occurred_at): commit + dispatcher fan-out p50 "
            f"{percentile(r.fan_out_ms, 50):.1f} ms p99 {percentile(r.fan_out_ms, 99):.1f} ms; "
            f"fan-out -> receiver (deliver job claimed, webhook read, signed POST) p50 "
            f"{percentile(r.send_ms, 50):.1f} ms p99 {percentile(r.send_ms, 99):.1f} ms"
        )
    for note in notes:
        print(f"NOTE: {note}")
    return 0 if all(r.received == r.sent and r.bad_signatures == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Two-way sync with Clio: change-to-visible latency each way, API calls per change, and a backfill
against the bound Clio's rate limit sets.

Everything runs as it does in production, each in its own process: ``casebridge serve`` (embedded
worker, ``CASEBRIDGE_PUBLIC_URL`` set so the sandbox's webhooks reach it) and ``casebridge sandbox
clio`` with 20 ms added to every API request (fault injection). This process plays the people: it edits
through Casebridge's API and through Clio's API with a Clio user's token, and watches the other side.

- **latency (webhooks)**: N edits each way, one at a time. Casebridge → Clio: from our API's 200 until
  a webhook of the bench's own (on the sandbox, contacts, ``first_name``) reports the new value; Clio →
  Casebridge: from Clio's 200 until our API shows the value (checked every 10 ms). Target p99 < 1 s.
- **latency (polling)**: webhooks off, poll every ``--poll-interval`` s; edits in Clio at random moments.
  Target p99 < interval + 1 s.
- **calls**: what Casebridge sent to Clio (the sandbox counts per token) per change here, per change in
  Clio (echoes included), and list calls per 200 records of a pull backfill of ``--pull`` records.
- **backfill**: ``--backfill`` contacts that existed before connecting, pushed at ``--rate-limit``
  requests per ``--window`` s; its time against the bound (records ÷ rate), and 429s received.

    .venv/bin/python bench/sync.py [--backends sqlite,postgresql] [--scenarios latency,polling,calls,backfill]
        [--changes 100] [--poll-interval 5] [--pull 1000] [--backfill 2000] [--rate-limit 50] [--window 60]

No test asserts on time; the figures are for people (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import DEFAULT_PG_URL, Unavailable, free_port, postgres_database, prepare, running, sqlite_database

ROOT = Path(__file__).resolve().parents[1]
CASEBRIDGE = str(Path(sys.executable).parent / "casebridge")
CLIENT_ID, CLIENT_SECRET = "bench", "bench-secret"


@dataclass
class Stack:
    api: httpx.Client
    clio_base: str
    user: httpx.Client  # a Clio user's client (its own token and rate-limit window)
    user_token: str
    connection_id: str = ""

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        r = httpx.request(method, f"{self.clio_base}/_sandbox{path}", timeout=30, **kwargs)
        r.raise_for_status()
        return r.json() if r.content else None

    def our_requests(self) -> tuple[int, dict[str, int], int]:
        """(Casebridge's requests to Clio, all requests per endpoint, Casebridge's 429s)."""
        body = self.admin("GET", "/requests")
        ours = sum(n for t, n in body["by_token"].items() if t != self.user_token)
        limited = sum(n for t, n in body["rate_limited_by_token"].items() if t != self.user_token)
        return ours, body["by_endpoint"], limited

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self.api.get(f"/api/v1/connections/{self.connection_id}/health").json()
        return body

    def settle(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queue = self.health()["queue"]
            if not {k: v for k, v in queue.items() if k in ("sync.reconcile", "sync.backfill")}:
                return
            time.sleep(0.1)
        raise RuntimeError("the sync did not settle")


@contextmanager
def stack(
    url: str, root: Path, *, rate_limit: int, window: float, latency_ms: float, webhooks: bool
) -> Iterator[Stack]:
    token, _ = prepare(url)
    data = root / "data"
    api_port, clio_port = free_port(), free_port()
    api_base, clio_base = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{clio_port}"
    env = {
        **os.environ,
        "CASEBRIDGE_DATABASE_URL": url,
        "CASEBRIDGE_DATA_DIR": str(data),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    if webhooks:
        env["CASEBRIDGE_PUBLIC_URL"] = api_base
    else:
        env.pop("CASEBRIDGE_PUBLIC_URL", None)
    faults = json.dumps({"latency": {"distribution": "fixed", "ms": latency_ms}}) if latency_ms else None
    sandbox_cmd = [
        CASEBRIDGE,
        "sandbox",
        "clio",
        "--port",
        str(clio_port),
        "--rate-limit",
        str(rate_limit),
        "--rate-limit-window",
        str(window),
        "--allow-http-webhooks",
        "--webhook-time-scale",
        "0.01",
        "--app",
        f"{CLIENT_ID}:{CLIENT_SECRET}:{api_base}/oauth/clio/callback",
    ]
    if faults:
        sandbox_cmd += ["--faults", faults]
    serve_cmd = [CASEBRIDGE, "serve", "--host", "127.0.0.1", "--port", str(api_port), "--log-format", "text"]
    with (
        running(
            sandbox_cmd, env, f"{clio_base}/_sandbox/settings", "the Clio sandbox", log=root / "sandbox.log"
        ),
        running(serve_cmd, env, f"{api_base}/readyz", "casebridge serve", log=root / "serve.log"),
    ):
        user_token = httpx.post(f"{clio_base}/_sandbox/tokens", json={}).json()["access_token"]
        with (
            httpx.Client(base_url=api_base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as api,
            httpx.Client(
                base_url=f"{clio_base}/api/v4", headers={"Authorization": f"Bearer {user_token}"}, timeout=60
            ) as user,
        ):
            yield Stack(api, clio_base, user, user_token)


def connect(s: Stack, **settings: Any) -> None:
    r = s.api.post(
        "/api/v1/connections",
        json={
            "base_url": s.clio_base,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": f"{str(s.api.base_url).rstrip('/')}/oauth/clio/callback",
            "settings": settings,
        },
    )
    r.raise_for_status()
    s.connection_id = r.json()["id"]
    page = httpx.get(
        r.json()["authorize_url"] + "&sandbox_auto_approve=true",
        follow_redirects=True,
        headers={"Accept": "application/json"},
        timeout=60,
    )
    page.raise_for_status()


def _until(predicate: Callable[[], Any], timeout: float = 60, step: float = 0.01) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if predicate():
            return time.perf_counter() - started
        time.sleep(step)
    return None


# --- the bench's own webhook on the sandbox: when a change lands in Clio ---------------------------


@dataclass
class Watcher:
    seen: dict[tuple[int, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, remote_id: int, value: str, timeout: float = 30) -> float | None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            with self.lock:
                at = self.seen.get((remote_id, value))
            if at is not None:
                return at
            time.sleep(0.002)
        return None


@contextmanager
def watching(s: Stack) -> Iterator[Watcher]:
    watcher = Watcher()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            now = time.perf_counter()
            secret = self.headers.get("x-hook-secret")
            self.send_response(200)
            if secret:
                self.send_header("X-Hook-Secret", secret)
            self.end_headers()
            if not secret:
                data = json.loads(body)["data"]
                with watcher.lock:
                    watcher.seen.setdefault((int(data["id"]), str(data.get("first_name"))), now)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    hook = s.user.post(
        "/webhooks",
        json={"data": {"url": url, "model": "contact", "fields": "id,first_name", "events": ["updated"]}},
    )
    hook.raise_for_status()
    _until(
        lambda: (
            s.user.get(f"/webhooks/{hook.json()['data']['id']}", params={"fields": "status"}).json()["data"][
                "status"
            ]
            == "enabled"
        ),
        10,
        0.05,
    )
    try:
        yield watcher
    finally:
        server.shutdown()


def _shows(s: Stack, local_id: str, value: str) -> Callable[[], bool]:
    """Whether Casebridge shows ``value`` as the contact's first name (checked through the API)."""
    return lambda: bool(s.api.get(f"/api/v1/contacts/{local_id}").json()["first_name"] == value)


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if not ordered:
        return math.nan, math.nan, math.nan
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return statistics.median(ordered), p99, ordered[-1]


def _contact(s: Stack, n: int) -> tuple[str, int]:
    r = s.api.post(
        "/api/v1/contacts", json={"kind": "person", "first_name": "Bench", "last_name": f"L{n:05d}"}
    )
    r.raise_for_status()
    local_id = r.json()["id"]

    def linked() -> int | None:
        link = s.api.get(f"/api/v1/contacts/{local_id}/sync").json()["link"]
        return link["remote_id"] if link and link["remote_id"] else None

    _until(linked, 30, 0.02)
    rid = linked()
    assert rid is not None, "the contact was not linked"
    return local_id, int(rid)


# --- scenarios ------------------------------------------------------------------------------------


def latency_webhooks(s: Stack, changes: int) -> list[list[str]]:
    pairs = [_contact(s, n) for n in range(20)]
    s.settle()
    rows = []
    with watching(s) as watcher:
        out: list[float] = []
        for n in range(changes):
            local_id, remote_id = random.choice(pairs)
            value = f"Here{n}"
            r = s.api.patch(f"/api/v1/contacts/{local_id}", json={"first_name": value})
            t0 = time.perf_counter()
            r.raise_for_status()
            seen = watcher.wait(remote_id, value)
            if seen is not None:
                out.append(seen - t0)
        rows.append(
            ["webhooks", "Casebridge → Clio", f"{len(out)}/{changes}", *_ms(out), "1000", _ok(out, 1.0)]
        )
    back: list[float] = []
    for n in range(changes):
        local_id, remote_id = random.choice(pairs)
        value = f"Clio{n}"
        s.user.patch(f"/contacts/{remote_id}", json={"data": {"first_name": value}}).raise_for_status()
        took = _until(_shows(s, local_id, value), 30)
        if took is not None:
            back.append(took)
    rows.append(
        ["webhooks", "Clio → Casebridge", f"{len(back)}/{changes}", *_ms(back), "1000", _ok(back, 1.0)]
    )
    return rows


def latency_polling(s: Stack, changes: int, interval: float) -> list[list[str]]:
    pairs = [_contact(s, 1000 + n) for n in range(10)]
    s.settle()
    s.api.patch(
        f"/api/v1/connections/{s.connection_id}",
        json={"settings": {"webhooks": False, "poll_interval_seconds": interval}},
    ).raise_for_status()
    _until(lambda: not s.health()["webhooks"], 30, 0.2)
    out: list[float] = []
    for n in range(changes):
        time.sleep(random.uniform(0, interval))  # land at a random moment of the poll cycle
        local_id, remote_id = pairs[n % len(pairs)]
        value = f"Polled{n}"
        s.user.patch(f"/contacts/{remote_id}", json={"data": {"first_name": value}}).raise_for_status()
        took = _until(_shows(s, local_id, value), interval * 3 + 10)
        if took is not None:
            out.append(took)
    bound = (interval + 1) * 1000
    return [
        [
            "polling",
            f"Clio → Casebridge ({interval:g} s)",
            f"{len(out)}/{changes}",
            *_ms(out),
            f"{bound:.0f}",
            _ok(out, bound / 1000),
        ]
    ]


def _ms(values: list[float]) -> list[str]:
    return [f"{v * 1000:.0f}" for v in _percentiles(values)]


def _ok(values: list[float], target: float) -> str:
    return "yes" if values and _percentiles(values)[1] < target else "no"


def _writes(by_endpoint: dict[str, int]) -> int:
    return sum(n for endpoint, n in by_endpoint.items() if endpoint.split()[0] in ("POST", "PATCH", "DELETE"))


def calls(s: Stack, changes: int, pull: int) -> list[list[str]]:
    """Each record is changed once (a person does not edit one record twice a second; Clio's timestamps
    are whole seconds, so two versions of a record within one second cost a read to order them)."""
    pairs = [_contact(s, 2000 + n) for n in range(changes)]
    s.settle()
    time.sleep(1.5)
    s.settle()
    rows = []
    for what, change in (
        (
            "a change here (its echo included)",
            lambda n: s.api.patch(f"/api/v1/contacts/{pairs[n][0]}", json={"last_name": f"Changed{n}"}),
        ),
        (
            "a change in Clio (its echo included)",
            lambda n: s.user.patch(f"/contacts/{pairs[n][1]}", json={"data": {"last_name": f"InClio{n}"}}),
        ),
    ):
        before, endpoints, _ = s.our_requests()
        writes_before = _writes(endpoints)
        user_writes = 0
        for n in range(changes):
            change(n).raise_for_status()
            user_writes += "Clio" in what
        time.sleep(1.5)  # the webhooks that echo the writes come back meanwhile
        s.settle()
        after, endpoints, _ = s.our_requests()
        writes = _writes(endpoints) - writes_before - user_writes
        target = "1 write, 0 reads" if "here" in what else "0"
        rows.append(
            [
                what,
                f"{changes}",
                f"{writes / changes:.2f}",
                f"{(after - before - writes) / changes:.2f}",
                target,
            ]
        )
    # Unchanged records cost nothing: a quiet minute of the same connection.
    before, _, _ = s.our_requests()
    time.sleep(5)
    after, _, _ = s.our_requests()
    rows.append(
        [
            "5 quiet seconds (polls every 60 s)",
            "0",
            "0.00",
            f"{after - before}",
            "0 (a poll: 2 list calls a minute)",
        ]
    )
    # a pull backfill of records made in Clio before... (made now, with webhooks off so they are history)
    s.api.patch(
        f"/api/v1/connections/{s.connection_id}",
        json={"settings": {"webhooks": False, "poll_interval_seconds": 3600}},
    ).raise_for_status()
    _until(lambda: not s.health()["webhooks"], 30, 0.2)
    s.admin(
        "POST",
        "/seed",
        json={
            "contacts": [
                {
                    "type": "Person",
                    "first_name": "Pulled",
                    "last_name": f"P{n:05d}",
                    "email_addresses": [],
                    "phone_numbers": [],
                    "addresses": [],
                }
                for n in range(pull)
            ]
        },
    )
    before, _, _ = s.our_requests()
    r = s.api.post(
        f"/api/v1/connections/{s.connection_id}/backfill", json={"entity": "contact", "direction": "pull"}
    )
    r.raise_for_status()
    _until(
        lambda: (next(x for x in s.health()["streams"] if x["entity"] == "contact")["backfill"] or {}).get(
            "finished_at"
        ),
        600,
        0.2,
    )
    after, _, _ = s.our_requests()
    listed = pull + len(pairs) + 20  # every Clio contact is listed once to match against
    rows.append(
        [
            f"pull backfill of {pull} new records",
            f"{pull}",
            "0.00",
            f"{after - before} calls: {(after - before) / listed * 200:.2f} per 200 listed",
            f"1 list call per 200 ({math.ceil(listed / 200)} pages)",
        ]
    )
    return rows


def backfill(
    url: str, root: Path, records: int, rate_limit: int, window: float, latency_ms: float
) -> list[list[str]]:
    """Local contacts made before connecting, pushed to Clio at the rate limit."""
    root.mkdir(parents=True, exist_ok=True)
    with stack(url, root, rate_limit=rate_limit, window=window, latency_ms=latency_ms, webhooks=False) as s:
        with httpx.Client(base_url=str(s.api.base_url), headers=dict(s.api.headers), timeout=60) as api:
            for n in range(records):
                api.post(
                    "/api/v1/contacts", json={"kind": "person", "first_name": "Old", "last_name": f"H{n:05d}"}
                ).raise_for_status()
        connect(s, poll_interval_seconds=3600)
        time.sleep(1)
        _, _, limited_before = s.our_requests()
        before, _, _ = s.our_requests()
        started = time.perf_counter()
        s.api.post(
            f"/api/v1/connections/{s.connection_id}/backfill", json={"entity": "contact", "direction": "push"}
        ).raise_for_status()

        def finished() -> bool:
            return bool(
                (next(x for x in s.health()["streams"] if x["entity"] == "contact")["backfill"] or {}).get(
                    "finished_at"
                )
            )

        _until(finished, records / rate_limit * window * 3 + 120, 1.0)
        took = time.perf_counter() - started
        after, _, limited = s.our_requests()
        pushed = len(s.admin("GET", "/state/contacts"))
        bound = records / rate_limit * window
        return [
            [
                f"{records} contacts at {rate_limit}/{window:g} s",
                f"{pushed}",
                f"{after - before}",
                f"{took:.0f}",
                f"{bound:.0f}",
                f"{took / bound:.3f}",
                f"{limited - limited_before}",
            ]
        ]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join(
        [line, sep, *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--scenarios", default="latency,polling,calls,backfill")
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--pull", type=int, default=1000)
    parser.add_argument("--backfill", type=int, default=2000)
    parser.add_argument("--rate-limit", type=int, default=50)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    scenarios = set(args.scenarios.split(","))
    random.seed(7)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; sandbox +{args.latency_ms:g} ms per request"
    )
    latency_rows: list[list[str]] = []
    call_rows: list[list[str]] = []
    backfill_rows: list[list[str]] = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"cb-sync-{backend}-") as tmp:
            root = Path(tmp)
            try:
                database = sqlite_database(root) if backend == "sqlite" else postgres_database(args.pg_url)
                with database as url:
                    if scenarios & {"latency", "polling", "calls"}:
                        with stack(
                            url,
                            root,
                            rate_limit=100_000,
                            window=60,
                            latency_ms=args.latency_ms,
                            webhooks=True,
                        ) as s:
                            connect(s)
                            _until(
                                lambda: (
                                    len(s.health()["webhooks"]) == 2
                                    and all(w["status"] == "enabled" for w in s.health()["webhooks"])
                                ),
                                30,
                                0.1,
                            )
                            if "latency" in scenarios:
                                latency_rows += [[backend, *r] for r in latency_webhooks(s, args.changes)]
                            if "calls" in scenarios:
                                call_rows += [[backend, *r] for r in calls(s, args.changes, args.pull)]
                            if "polling" in scenarios:
                                latency_rows += [
                                    [backend, *r]
                                    for r in latency_polling(
                                        s, max(10, args.changes // 5), args.poll_interval
                                    )
                                ]
                if "backfill" in scenarios:
                    with database_again(backend, root, args.pg_url) as url2:
                        backfill_rows += [
                            [backend, *r]
                            for r in backfill(
                                url2,
                                root / "backfill",
                                args.backfill,
                                args.rate_limit,
                                args.window,
                                args.latency_ms,
                            )
                        ]
            except Unavailable as exc:
                print(f"# {backend} skipped: {exc}")
    if latency_rows:
        print("\nchange-to-visible latency (rate limit off)\n")
        print(
            _table(
                [
                    "backend",
                    "capture",
                    "direction",
                    "seen",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "target p99 ms",
                    "met",
                ],
                latency_rows,
            )
        )
    if call_rows:
        print("\nAPI calls Casebridge made per synced change (rate limit off)\n")
        print(_table(["backend", "what", "changes", "writes each", "reads each", "target"], call_rows))
    if backfill_rows:
        print("\nbackfill against the rate limit's bound\n")
        print(
            _table(
                ["backend", "backfill", "in Clio", "calls", "took s", "bound s", "ratio", "429s"],
                backfill_rows,
            )
        )


@contextmanager
def database_again(backend: str, root: Path, pg_url: str) -> Iterator[str]:
    if backend == "sqlite":
        (root / "backfill").mkdir(exist_ok=True)
        yield f"sqlite:///{root / 'backfill' / 'bench.db'}"
    else:
        with postgres_database(pg_url) as url:
            yield url


if __name__ == "__main__":
    main()

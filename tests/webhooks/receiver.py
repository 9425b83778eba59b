"""A scriptable webhook receiver on loopback: a real HTTP server in a thread of the test process."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from casebridge.webhooks.signing import verify


@dataclass(frozen=True)
class Step:
    """What the receiver does with one request: answer ``status`` (with ``headers``), after ``sleep`` s."""

    status: int = 200
    sleep: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"ok": true}'


OK = Step()


def fail(status: int = 500, **headers: str) -> Step:
    return Step(status=status, headers=headers, body=f'{{"error": "scripted {status}"}}')


def hang(seconds: float) -> Step:
    """Answer 200, but only after ``seconds`` (past the sender's timeout: the sender counts a failure)."""
    return Step(sleep=seconds)


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: bytes
    step: Step
    ok: bool  # answered 2xx promptly (the sender saw a success)

    @property
    def event_id(self) -> int:
        return int(self.headers["casebridge-event-id"])

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    def signed_by(self, secret: str) -> bool:
        return verify(secret, self.body, self.headers.get("casebridge-signature", ""))


class Receiver:
    def __init__(self, timeout_hint: float) -> None:
        self.lock = threading.Lock()
        self.script: list[Step] = []
        self.default = OK
        self.received: list[Received] = []
        self.timeout_hint = timeout_hint
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.monotonic()
                step = receiver._next()
                ok = 200 <= step.status < 300 and step.sleep < receiver.timeout_hint
                with receiver.lock:
                    receiver.received.append(
                        Received(arrived, {k.lower(): v for k, v in self.headers.items()}, body, step, ok)
                    )
                if step.sleep:
                    time.sleep(step.sleep)
                payload = step.body.encode()
                try:
                    self.send_response(step.status)
                    for k, v in step.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/casebridge"

    def _next(self) -> Step:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def then(self, *steps: Step) -> None:
        with self.lock:
            self.script.extend(steps)

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def delivered(self) -> list[Received]:
        """Requests the sender saw succeed, in arrival order (may hold duplicates: at least once)."""
        return [r for r in self.all() if r.ok]

    def delivered_ids(self) -> set[int]:
        return {r.event_id for r in self.delivered()}

    def first_success_order(self) -> dict[str, list[int]]:
        """Per entity, event ids in the order of their first successful receipt (duplicates dropped)."""
        out: dict[str, list[int]] = defaultdict(list)
        seen: set[int] = set()
        for r in self.delivered():
            if r.event_id in seen:
                continue
            seen.add(r.event_id)
            out[r.event["entity_id"]].append(r.event_id)
        return dict(out)


@contextmanager
def running_receiver(timeout_hint: float) -> Iterator[Receiver]:
    receiver = Receiver(timeout_hint)
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()

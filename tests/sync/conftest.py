"""Fixtures for sync tests: the Clio sandbox as a real server, a job worker, and a Casebridge connected to
the sandbox through the real OAuth flow, with Clio's webhooks delivered to the live server.

``clio_user`` is a client of the sandbox's Clio API with a token of its own: it plays a person working
in Clio. The sandbox counts requests per token, so what Casebridge spent is the count of every other
token (``our_calls``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from casebridge.jobs.builtin import build_registry
from casebridge.jobs.worker import Worker
from casebridge.sandbox.clio import SandboxConfig, SandboxState, create_app
from tests.conftest import Backend, LiveServer, _serve
from tests.sandbox.conftest import Sandbox

CLIENT_ID = "casebridge-tests"
CLIENT_SECRET = "s3cret-for-tests"


def wait_for(predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(scope="session")
def clio_server() -> Iterator[Sandbox]:
    state = SandboxState(
        SandboxConfig(
            rate_limit=100_000, allow_http_webhooks=True, webhook_time_scale=0.001, webhook_timeout=5
        )
    )
    app = create_app(state)
    server, thread, url = _serve(app, date_header=False)
    yield Sandbox(url, state, app)
    from casebridge.sync.runtime import close_all

    close_all()
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Clio:
    """The sandbox, reset, and a Clio user's client."""

    sandbox: Sandbox
    user: httpx.Client
    user_token: str

    @property
    def url(self) -> str:
        return self.sandbox.url

    def admin(self) -> httpx.Client:
        return self.sandbox.admin()

    def our_calls(self) -> dict[str, int]:
        """Requests Casebridge made, per endpoint (everything not made with the Clio user's token)."""
        with self.admin() as admin:
            body = admin.get("/requests").json()
        return {"total": sum(n for token, n in body["by_token"].items() if token != self.user_token)}

    def records(self, kind: str) -> list[dict[str, Any]]:
        with self.admin() as admin:
            rows: list[dict[str, Any]] = admin.get(f"/state/{kind}").json()
            return rows

    def requests(self) -> dict[str, Any]:
        with self.admin() as admin:
            body: dict[str, Any] = admin.get("/requests").json()
            return body

    def rate_limited(self) -> int:
        """429s the sandbox's limiter answered Casebridge (not those forced by fault injection)."""
        return sum(
            n for token, n in self.requests()["rate_limited_by_token"].items() if token != self.user_token
        )

    def settings(self, **changes: Any) -> None:
        with self.admin() as admin:
            r = admin.patch("/settings", json=changes)
            assert r.status_code == 200, r.text

    def advance_clock(self, seconds: float) -> None:
        with self.admin() as admin:
            r = admin.post("/clock", json={"advance_seconds": seconds})
            assert r.status_code == 200, r.text

    def faults(self, **settings: Any) -> None:
        with self.admin() as admin:
            r = admin.put("/faults", json=settings)
            assert r.status_code == 200, r.text


@pytest.fixture
def clio(clio_server: Sandbox) -> Iterator[Clio]:
    with clio_server.admin() as admin:
        admin.post("/reset").raise_for_status()
    token = clio_server.token()
    with httpx.Client(
        base_url=f"{clio_server.url}/api/v4", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as user:
        yield Clio(clio_server, user, token)


class Workers:
    """The job workers of a test: stop them to let changes pile up on both sides, start them again."""

    def __init__(self, backend: Backend, *, concurrency: int = 4) -> None:
        self.backend = backend
        self.concurrency = concurrency
        self.current: Worker | None = None

    def start(self) -> None:
        assert self.current is None
        self.current = Worker(
            self.backend.db,
            build_registry(self.backend.settings),
            settings=self.backend.settings,
            concurrency=self.concurrency,
            poll_interval=0.05,
            lease_seconds=5,
            shutdown_grace=5,
        )
        self.current.start()

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


@pytest.fixture
def sync_worker(live_server: LiveServer, clean: Backend) -> Iterator[Workers]:
    workers = Workers(clean)
    workers.start()
    yield workers
    workers.stop()


@dataclass
class Connected:
    id: str
    api: httpx.Client
    clio: Clio
    backend: Backend
    server: LiveServer
    workers: Workers

    def health(self) -> dict[str, Any]:
        r = self.api.get(f"/api/v1/connections/{self.id}/health")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def settings(self, **changes: Any) -> dict[str, Any]:
        r = self.api.patch(f"/api/v1/connections/{self.id}", json={"settings": changes})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def status(self, entity: str, local_id: str) -> dict[str, Any]:
        r = self.api.get(f"/api/v1/{entity}s/{local_id}/sync")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def remote_id(self, entity: str, local_id: str, timeout: float = 20) -> int:
        def linked() -> int | None:
            link = self.status(entity, local_id)["link"]
            return link["remote_id"] if link and link["state"] in ("linked", "conflict") else None

        return int(self.wait(linked, timeout, f"{entity} {local_id} to be linked"))

    def local_id(self, entity: str, remote_id: int, timeout: float = 20) -> str:
        def found() -> str | None:
            r = self.api.get(f"/api/v1/connections/{self.id}/links", params={"entity": entity, "limit": 200})
            for link in r.json()["data"]:
                if link["remote_id"] == remote_id and link["local_id"] and link["state"] != "pending":
                    return str(link["local_id"])
            return None

        return str(self.wait(found, timeout, f"Clio {entity} {remote_id} to arrive here"))

    def run_now(self, kind: str) -> None:
        """Run one of the connection's timed jobs (sync.poll, sync.webhooks, sync.full) now."""
        from casebridge.db.session import unit_of_work
        from casebridge.sync.tasks import run_now

        with unit_of_work(self.backend.db.writer) as session:
            run_now(session, kind, uuid.UUID(self.id))

    def settle(self, timeout: float = 30, *, also: tuple[str, ...] = ()) -> None:
        """Wait until no sync job is due or running (``also``: kinds besides reconciles, backfills and
        event dispatch, such as ``sync.poll`` or ``sync.full``)."""

        from sqlalchemy import func, or_, select

        from casebridge.db.session import unit_of_work
        from casebridge.db.types import utcnow
        from casebridge.models import Job

        work = ("sync.reconcile", "sync.backfill", "events.dispatch", "events.deliver")

        def quiet() -> bool:
            with unit_of_work(self.backend.db.reader) as session:
                busy = session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(
                        or_(
                            # work waiting in any way (due, backing off after a failure, or snoozed)
                            Job.kind.in_(work) & Job.state.in_(["available", "running"]),
                            # timed chains (poll, full): only when due or running
                            Job.kind.in_(also)
                            & or_(
                                Job.state == "running", (Job.state == "available") & (Job.run_at <= utcnow())
                            ),
                        )
                    )
                )
            return not busy

        self.wait(quiet, timeout, "the sync to settle")

    def wait(self, predicate: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
        """``wait_for``, and on a timeout say what the sync was doing."""
        try:
            return wait_for(predicate, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnose()}") from None

    def diagnose(self) -> str:
        from sqlalchemy import select

        from casebridge.db.session import unit_of_work
        from casebridge.models import Job, SyncJournal, SyncLink

        with unit_of_work(self.backend.db.reader) as session:
            jobs = [
                (j.kind, j.state, j.attempts, j.args.get("trigger"), str(j.run_at), (j.errors or [])[-1:])
                for j in session.scalars(select(Job).where(Job.state.in_(["available", "running"])))
            ]
            links = [
                (
                    str(x.id)[:8],
                    x.entity,
                    x.state,
                    x.local_id is not None,
                    x.remote_id,
                    bool(x.intent),
                    x.lease_owner,
                    x.error,
                )
                for x in session.scalars(select(SyncLink))
                if x.state != "linked"
            ]
            errors = [
                (j.trigger, j.action, j.summary)
                for j in session.scalars(
                    select(SyncJournal)
                    .where(SyncJournal.action == "error")
                    .order_by(SyncJournal.id.desc())
                    .limit(10)
                )
            ]
        budget = self.health()["rate_limit"]
        return f"jobs waiting or running: {jobs}\nlinks not linked: {links}\nrecent errors: {errors}\nbudget: {budget}"


def connect(api: httpx.Client, clio: Clio, server: LiveServer, **settings: Any) -> str:
    callback = f"{server.url}/oauth/clio/callback"
    with clio.admin() as admin:
        r = admin.post(
            "/apps",
            json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [callback]},
        )
        assert r.status_code == 201, r.text
    body: dict[str, Any] = {
        "base_url": clio.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": callback,
    }
    if settings:
        body["settings"] = settings
    r = api.post("/api/v1/connections", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["state"] == "authorizing"
    # The person approves in Clio; Clio sends their browser back to our callback.
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(
            created["authorize_url"] + "&sandbox_auto_approve=true", headers={"Accept": "application/json"}
        )
    assert page.status_code == 200, page.text
    assert page.json()["state"] == "connected"
    return str(created["id"])


@pytest.fixture
def polled(
    clio: Clio, api: httpx.Client, sync_worker: Workers, live_server: LiveServer, clean: Backend
) -> Connected:
    """Connected where Clio cannot reach us (no public URL, so no webhooks), polling every second."""
    clean.settings.public_url = None
    connection_id = connect(api, clio, live_server, poll_interval_seconds=1, poll_lag_seconds=2)
    return Connected(connection_id, api, clio, clean, live_server, sync_worker)


@pytest.fixture
def connected(
    clio: Clio, api: httpx.Client, sync_worker: Workers, live_server: LiveServer, clean: Backend
) -> Connected:
    """(``clio`` first: the sandbox is reset, so it stops sending the last test's webhooks, before
    the database is emptied.)"""
    clean.settings.public_url = live_server.url
    connection_id = connect(api, clio, live_server)
    conn = Connected(connection_id, api, clio, clean, live_server, sync_worker)

    def webhooks_enabled() -> bool:
        hooks = conn.health()["webhooks"]
        return len(hooks) == 2 and all(h["status"] == "enabled" for h in hooks)

    wait_for(webhooks_enabled, 20, "Clio's webhooks to be enabled")
    return conn

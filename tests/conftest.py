"""Test harness: every test runs against a real server over loopback HTTP, on SQLite and PostgreSQL.

- The schema is made by the Alembic migrations, once per backend per run.
- PostgreSQL gets a fresh database per run (``cb_test_<random>``), dropped at the end. Set
  ``CASEBRIDGE_TEST_PG_URL`` to point elsewhere (default: the local server, user postgres, database test).
  If PostgreSQL is unreachable its tests are skipped and the run's summary says so.
- Each test starts from empty tables.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.engine import make_url

from casebridge.app import create_app
from casebridge.auth.service import create_token
from casebridge.config import Settings
from casebridge.db import migrate
from casebridge.db.session import Database, unit_of_work
from casebridge.kit.context import Role
from casebridge.models import Base

PG_ADMIN_URL = os.environ.get("CASEBRIDGE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_skip_reason: list[str] = []


def _pg_available() -> str | None:
    try:
        with psycopg.connect(_libpq(PG_ADMIN_URL), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return (
            f"PostgreSQL at {make_url(PG_ADMIN_URL).render_as_string(hide_password=True)} unreachable: {exc}"
        )


def _libpq(url: str) -> str:
    u = make_url(url)
    parts = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, "dbname": u.database}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    reason = _pg_available()
    if reason:
        if reason not in _pg_skip_reason:
            _pg_skip_reason.append(reason)
        pytest.skip(reason)
    name = f"cb_test_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Backend:
    name: str
    url: str
    db: Database
    settings: Settings

    def truncate(self) -> None:
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
        with self.db.engine.begin() as conn:
            if self.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(text(f"DELETE FROM {table}"))
                conn.execute(text("DELETE FROM sqlite_sequence"))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'casebridge.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    settings = Settings(
        database_url=url, data_dir=root / "data", max_upload_bytes=50 * 1024 * 1024, embedded_worker=False
    )
    db = Database.from_url(url)
    migrate.upgrade(db.engine)
    yield Backend(request.param, url, db, settings)
    db.dispose()


@dataclass
class LiveServer:
    url: str
    backend: Backend


def _serve(app: object, *, date_header: bool = True) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve ``app`` on a free loopback port in a thread. The Clio sandbox sets its own ``Date`` (its
    clock), so it is served with ``date_header=False``."""
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        date_header=date_header,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def live_server(backend: Backend) -> Iterator[LiveServer]:
    app = create_app(backend.settings, db=backend.db)
    server, thread, url = _serve(app)
    yield LiveServer(url, backend)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def clean(backend: Backend) -> Backend:
    backend.truncate()
    return backend


MakeClient = Callable[..., httpx.Client]


@pytest.fixture
def make_client(live_server: LiveServer, clean: Backend) -> Iterator[MakeClient]:
    """``make_client(role)``: an HTTP client holding a fresh token of that role (None: no token)."""
    clients: list[httpx.Client] = []

    def make(role: Role | None = Role.ADMIN, name: str | None = None) -> httpx.Client:
        headers = {}
        if role is not None:
            with unit_of_work(clean.db.writer) as session:
                issued = create_token(session, name=name or f"test-{role.value}", role=role)
            headers["Authorization"] = f"Bearer {issued.secret}"
        client = httpx.Client(base_url=live_server.url, headers=headers, timeout=60)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def api(make_client: MakeClient) -> httpx.Client:
    """An admin client."""
    return make_client(Role.ADMIN)


@pytest.fixture
def data_dir(live_server: LiveServer) -> Path:
    return live_server.backend.settings.data_dir


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _pg_skip_reason:
        terminalreporter.write_line(
            f"NOTE: PostgreSQL was skipped, only SQLite ran. {_pg_skip_reason[0]}", yellow=True, bold=True
        )

"""Platform behaviour every client relies on: health, readiness, OpenAPI, problem+json and request ids.

The OpenAPI operation ids are snapshotted in tests/openapi_ids.txt (one per line, sorted). After adding,
renaming or removing an endpoint, regenerate it with::

    .venv/bin/python -m tests.test_platform --write-ids
"""

from __future__ import annotations

import re
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url

from casebridge.app import API_PREFIX, create_app
from casebridge.config import Settings
from casebridge.db import migrate
from casebridge.db.session import Database
from tests.conftest import PG_ADMIN_URL, Backend, LiveServer, _libpq, _serve
from tests.test_auth_matrix import ROUTES

IDS_FILE = Path(__file__).with_name("openapi_ids.txt")
PROBLEM_JSON = "application/problem+json"
REGENERATE = ".venv/bin/python -m tests.test_platform --write-ids"


def assert_problem(r: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert r.status_code in statuses, f"expected {statuses}, got {r.status_code}: {r.text}"
    assert r.headers["content-type"].startswith(PROBLEM_JSON), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == r.status_code
    assert body["type"].startswith("/problems/")
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == r.request.url.path
    assert r.headers["x-request-id"]
    return body


def app_settings(url: str, root: Path) -> Settings:
    """Settings for an app of our own; the embedded job worker is off (these tests are about the API)."""
    return Settings(database_url=url, data_dir=root / "data", secret_key="x" * 32, embedded_worker=False)


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` over loopback HTTP for the duration of the block; yields its base URL."""
    server, thread, url = _serve(app)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def fresh_database(backend: Backend, root: Path) -> Iterator[str]:
    """An empty database of the backend's kind (never migrated), dropped afterwards."""
    if backend.name == "sqlite":
        yield f"sqlite:///{root / 'fresh.db'}"
        return
    name = f"cb_test_fresh_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(backend.url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- health and readiness ------------------------------------------------------------------------------


def test_healthz_needs_no_token(live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.url}/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_on_a_migrated_database(live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.url}/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["migration"] == body["head"] == migrate.head_revision()


@pytest.mark.parametrize("stamp", [None, "0123456789ab"], ids=["never-migrated", "older-revision"])
def test_readyz_is_503_until_the_schema_is_current(
    backend: Backend, tmp_path: Path, stamp: str | None
) -> None:
    with fresh_database(backend, tmp_path) as url:
        db = Database.from_url(url)
        try:
            if stamp is not None:
                with db.engine.begin() as conn:
                    conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
                    conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": stamp})
            app = create_app(app_settings(url, tmp_path), db=db)
            with serving(app) as base:
                r = httpx.get(f"{base}/readyz")
                assert r.status_code == 503, r.text
                body = r.json()
                assert body["status"] == "unavailable"
                assert body["database"] == "ok"
                assert body["migration"] == stamp
                assert body["head"] == migrate.head_revision()
                assert "casebridge db upgrade" in body["detail"]
                # Alive all the same: liveness does not depend on the database.
                assert httpx.get(f"{base}/healthz").status_code == 200

                if stamp is None:
                    # Migrating the running server's database makes it ready without a restart.
                    migrate.upgrade(db.engine)
                    assert httpx.get(f"{base}/readyz").status_code == 200
        finally:
            db.dispose()


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'casebridge.db'}"
    app = create_app(app_settings(url, tmp_path))
    with serving(app) as base:
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["status"] == "unavailable"
        assert body["database"] == "unreachable"
        assert body["detail"] == "OperationalError"
        assert str(tmp_path) not in r.text, "readyz must not leak paths or URLs"
        assert httpx.get(f"{base}/healthz").status_code == 200


# --- OpenAPI -------------------------------------------------------------------------------------------


def operation_ids(spec: dict[str, Any]) -> list[str]:
    return [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]


def current_operation_ids() -> list[str]:
    """The sorted operation ids of the application as it is now (a throwaway in-memory app)."""
    with tempfile.TemporaryDirectory(prefix="cb-openapi-") as tmp:
        app = create_app(app_settings("sqlite://", Path(tmp)))
        try:
            return sorted(operation_ids(app.openapi()))
        finally:
            app.state.ctx.db.dispose()


def test_openapi_operation_ids_are_unique_and_named_after_the_function(live_server: LiveServer) -> None:
    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    ids = operation_ids(spec)
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicates == []
    by_operation = {
        (method.upper(), path): op["operationId"]
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    }
    functions = {
        (r.method, r.path): r.route.endpoint.__name__ for r in ROUTES if hasattr(r.route, "endpoint")
    }
    mismatched = {k: (v, functions.get(k)) for k, v in by_operation.items() if functions.get(k) != v}
    assert mismatched == {}, "operationId must equal the route function's name"


def test_openapi_operation_ids_match_the_snapshot(live_server: LiveServer) -> None:
    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    current = sorted(operation_ids(spec))
    stored = IDS_FILE.read_text().split() if IDS_FILE.exists() else []
    added, removed = sorted(set(current) - set(stored)), sorted(set(stored) - set(current))
    assert current == stored, (
        f"the API's operations changed (added {added}, removed {removed}); operation ids are part of the "
        f"public contract (generated clients use them). If intended, regenerate with `{REGENERATE}`."
    )


def test_openapi_publishes_only_api_and_health_paths(live_server: LiveServer) -> None:
    spec = httpx.get(f"{live_server.url}/openapi.json").json()
    assert spec["info"]["title"] == "Casebridge API"
    assert all(path.startswith(API_PREFIX) or path in ("/healthz", "/readyz") for path in spec["paths"])


def test_docs_page_is_served(live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.url}/docs")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    assert "/openapi.json" in r.text


# --- problem+json for framework-level errors -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", f"{API_PREFIX}/nope", f"{API_PREFIX}/contacts/x/y/z"])
def test_unknown_route_is_404_problem(api: httpx.Client, path: str) -> None:
    body = assert_problem(api.get(path), 404)
    assert body["type"] == "/problems/not-found"
    # Without a token too: there is nothing there to protect.
    assert_problem(httpx.get(f"{api.base_url}{path}"), 404)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", f"{API_PREFIX}/contacts", {"GET", "POST"}),
        ("POST", f"{API_PREFIX}/events", {"GET"}),
        ("DELETE", "/healthz", {"GET"}),
    ],
)
def test_wrong_method_is_405_problem(api: httpx.Client, method: str, path: str, allow: set[str]) -> None:
    r = api.request(method, path)
    body = assert_problem(r, 405)
    assert body["type"] == "/problems/method-not-allowed"
    advertised = {m.strip() for m in r.headers["allow"].split(",") if m.strip()}
    # Every route on the path counts, though Starlette answers from the first one alone.
    assert advertised == allow


def test_malformed_json_is_422_problem(api: httpx.Client) -> None:
    r = api.post(
        f"{API_PREFIX}/contacts", content=b'{"kind": "person", ', headers={"Content-Type": "application/json"}
    )
    body = assert_problem(r, 422)
    assert body["type"] == "/problems/validation"
    assert body["errors"][0]["field"].startswith("body")
    assert body["errors"][0]["code"] == "json_invalid"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_wrong_content_type_is_a_problem_not_a_500(api: httpx.Client, content_type: str) -> None:
    r = api.post(
        f"{API_PREFIX}/contacts",
        content=b'{"kind": "person", "last_name": "X"}',
        headers={"Content-Type": content_type},
    )
    assert_problem(r, 415, 422)
    assert api.get(f"{API_PREFIX}/contacts").json()["data"] == []


def test_json_body_that_is_not_an_object_is_422(api: httpx.Client) -> None:
    for payload in (b"[]", b"null", b'"text"', b"42"):
        r = api.post(f"{API_PREFIX}/contacts", content=payload, headers={"Content-Type": "application/json"})
        assert_problem(r, 422)


def test_bad_uuid_in_path_names_the_parameter(api: httpx.Client) -> None:
    r = api.get(f"{API_PREFIX}/contacts/not-a-uuid")
    body = assert_problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["path.contact_id"]
    r = api.patch(f"{API_PREFIX}/matters/123", json={})
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["path.matter_id"]


def test_bad_query_parameter_names_the_parameter(api: httpx.Client) -> None:
    r = api.get(f"{API_PREFIX}/contacts", params={"limit": "lots"})
    assert [e["field"] for e in assert_problem(r, 422)["errors"]] == ["query.limit"]


def test_unhandled_error_is_a_500_problem_without_internals(backend: Backend) -> None:
    app = create_app(backend.settings, db=backend.db)

    @app.get("/_boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    with serving(app) as base:
        r = httpx.get(f"{base}/_boom", headers={"X-Request-Id": "boom-1"})
    assert_problem(r, 500)
    assert "secret internal detail" not in r.text
    assert "Traceback" not in r.text
    assert r.headers["x-request-id"] == "boom-1"


# --- request ids ---------------------------------------------------------------------------------------


def test_request_id_is_echoed(api: httpx.Client) -> None:
    for path in ("/healthz", f"{API_PREFIX}/contacts", f"{API_PREFIX}/nope"):
        r = api.get(path, headers={"X-Request-Id": "client-abc_123.4:5"})
        assert r.headers["x-request-id"] == "client-abc_123.4:5"


def test_request_id_is_generated_when_absent(api: httpx.Client) -> None:
    ids = {api.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


@pytest.mark.parametrize("garbage", ["has spaces", "x" * 65, "semi;colon", 'quote"d', "é-accent"])
def test_garbage_request_id_is_replaced(api: httpx.Client, garbage: str) -> None:
    r = api.get("/healthz", headers=[(b"X-Request-Id", garbage.encode("utf-8"))])
    assert r.headers["x-request-id"] != garbage
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_request_id_on_problems_401_and_304(api: httpx.Client, live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.url}{API_PREFIX}/contacts", headers={"X-Request-Id": "anon-1"})
    assert r.status_code == 401
    assert r.headers["x-request-id"] == "anon-1"
    assert r.headers.get_list("x-request-id") == ["anon-1"]
    created = api.post(f"{API_PREFIX}/contacts", json={"kind": "person", "last_name": "Etag"}).json()
    r = api.get(
        f"{API_PREFIX}/contacts/{created['id']}",
        headers={"If-None-Match": created["etag"], "X-Request-Id": "cond-1"},
    )
    assert r.status_code == 304
    assert r.headers["x-request-id"] == "cond-1"


# --- snapshot maintenance ------------------------------------------------------------------------------


def _write_ids() -> None:
    ids = current_operation_ids()
    IDS_FILE.write_text("\n".join(ids) + "\n")
    print(f"wrote {len(ids)} operation ids to {IDS_FILE}")  # noqa: T201


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-ids"]:
        _write_ids()
    else:
        print(f"usage: {REGENERATE}")  # noqa: T201
        sys.exit(2)

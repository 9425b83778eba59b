"""The auth matrix, generated from the route table: every /api/v1 route x every kind of caller.

The parameters are read from the application's own route table when the tests are collected, so a new
route is in the matrix the moment it is registered, and it fails here (naming the route) unless it is
an :class:`ApiRoute` that declares exactly one ``Require(...)``.

For each route and each caller (no token, a revoked token, and a token of each role):

* no token / revoked token -> 401 problem+json with ``WWW-Authenticate``;
* a role outside the route's ``Require`` -> 403 problem+json;
* a role inside it -> neither 401 nor 403 (typically 404 for a random id, 422 for an empty body, or
  200), and never 5xx.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from casebridge.app import API_PREFIX, create_app
from casebridge.auth.service import create_token, revoke_token
from casebridge.config import Settings
from casebridge.db.session import unit_of_work
from casebridge.kit.context import ALL_ROLES, Role
from casebridge.kit.deps import Require
from casebridge.kit.uow import ApiRoute
from tests.conftest import Backend, LiveServer

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
    }
)
# Outside /api/v1 and without a bearer token, but checked otherwise (tests/sync has their full tests).
OTHERWISE_CHECKED = frozenset(
    {
        "/oauth/clio/callback",  # a person's browser, checked by the single-use OAuth state
        "/hooks/clio/{token}",  # Clio's webhooks, checked by their key and signature
    }
)
PROBLEM_JSON = "application/problem+json"


# --- the route table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    """One (method, path) of the application, flattened out of FastAPI's lazily included routers."""

    method: str
    path: str
    name: str
    route: Any  # the original route object (an APIRoute, or a Starlette Route for /docs and friends)
    requires: tuple[Require, ...] = ()
    has_body: bool = False
    path_params: dict[str, Any] = field(default_factory=dict)  # name -> annotation
    include_in_schema: bool = True

    @property
    def label(self) -> str:
        return f"{self.method} {self.path} ({self.name})"

    @property
    def test_id(self) -> str:
        return f"{self.name}:{self.method}"

    @property
    def is_api(self) -> bool:
        return self.path == API_PREFIX or self.path.startswith(API_PREFIX + "/")


def _contexts(app: FastAPI) -> Iterator[Any]:
    """Every route context of the app: included routers (FastAPI >= 0.16x) are expanded lazily."""
    for route in app.routes:
        expand = getattr(route, "effective_route_contexts", None)
        if expand is not None:
            yield from expand()
        else:
            yield route


def route_table(app: FastAPI) -> list[RouteInfo]:
    out: list[RouteInfo] = []
    for ctx in _contexts(app):
        original = getattr(ctx, "original_route", ctx)
        dependencies = list(getattr(ctx, "dependencies", None) or getattr(original, "dependencies", []) or [])
        requires = tuple(d.dependency for d in dependencies if isinstance(d.dependency, Require))
        dependant = getattr(ctx, "dependant", None) or getattr(original, "dependant", None)
        params = {p.name: p.field_info.annotation for p in dependant.path_params} if dependant else {}
        body = getattr(ctx, "body_field", None) if hasattr(ctx, "body_field") else None
        body = body if body is not None else getattr(original, "body_field", None)
        for method in sorted(getattr(ctx, "methods", None) or {"GET"}):
            if method == "HEAD" and "GET" in (ctx.methods or ()):
                continue  # Starlette's implicit HEAD beside GET
            out.append(
                RouteInfo(
                    method=method,
                    path=ctx.path,
                    name=getattr(ctx, "name", "") or getattr(original, "name", ""),
                    route=original,
                    requires=requires,
                    has_body=body is not None,
                    path_params=params,
                    include_in_schema=bool(getattr(ctx, "include_in_schema", True)),
                )
            )
    return out


def collect_route_table() -> list[RouteInfo]:
    """The route table of a throwaway app (in-memory SQLite, temporary data dir): only to read routes."""
    with tempfile.TemporaryDirectory(prefix="cb-routes-") as tmp:
        settings = Settings(
            database_url="sqlite://", data_dir=Path(tmp), secret_key="x" * 32, embedded_worker=False
        )
        app = create_app(settings)
        try:
            return route_table(app)
        finally:
            app.state.ctx.db.dispose()


ROUTES = collect_route_table()
API_ROUTES = [r for r in ROUTES if r.is_api]


# --- callers -------------------------------------------------------------------------------------------

CALLERS: tuple[str, ...] = ("no-token", "revoked-token", *(r.value for r in ALL_ROLES))


def _auth_header(backend: Backend, caller: str) -> dict[str, str]:
    if caller == "no-token":
        return {}
    role = Role.ADMIN if caller == "revoked-token" else Role(caller)
    with unit_of_work(backend.db.writer) as session:
        issued = create_token(session, name=f"matrix-{caller}-{uuid.uuid4().hex[:8]}", role=role)
        if caller == "revoked-token":
            revoke_token(session, issued.token)
    return {"Authorization": f"Bearer {issued.secret}"}


def fill_path(route: RouteInfo) -> str:
    """The route's path with a plausible value in every parameter: an int for ints, else a random UUID."""
    path = route.path
    for name, annotation in route.path_params.items():
        if annotation is int or name in ("n", "version", "number", "version_number"):
            value = "1"
        elif annotation is str:
            value = "x"
        else:
            value = str(uuid.uuid4())
        path = path.replace("{" + name + "}", value).replace("{" + name + ":path}", value)
    return path


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("/problems/")
    assert body["title"]
    assert body["detail"]
    return body


# --- tests ---------------------------------------------------------------------------------------------


def test_route_table_is_not_empty() -> None:
    assert len(API_ROUTES) >= 10, [r.label for r in ROUTES]


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: r.test_id)
def test_every_api_route_declares_exactly_one_require(route: RouteInfo) -> None:
    assert isinstance(route.route, ApiRoute), (
        f"{route.label} is not an ApiRoute: it would skip authentication and the unit of work; "
        "declare its router with route_class=ApiRoute"
    )
    assert len(route.requires) == 1, (
        f"{route.label} declares {len(route.requires)} Require(...) dependencies; every /api/v1 route "
        "must declare exactly one, e.g. dependencies=[Depends(Require(*ALL_ROLES))]"
    )
    assert route.requires[0].roles, f"{route.label}: Require() with no roles admits nobody"


def test_non_api_routes_are_exactly_the_public_ones() -> None:
    public = {r.path for r in ROUTES if not r.is_api}
    assert public == PUBLIC_PATHS | OTHERWISE_CHECKED


def test_the_otherwise_checked_routes_refuse_strangers(live_server: LiveServer) -> None:
    callback = httpx.get(f"{live_server.url}/oauth/clio/callback", timeout=30)
    assert callback.status_code == 400
    forged = httpx.get(
        f"{live_server.url}/oauth/clio/callback", params={"code": "c", "state": "s"}, timeout=30
    )
    assert forged.status_code == 400
    assert httpx.get(f"{live_server.url}/hooks/clio/x", timeout=30).status_code == 405
    unknown = httpx.post(f"{live_server.url}/hooks/clio/not-a-key", content=b"{}", timeout=30)
    assert unknown.status_code == 410


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: r.test_id)
def test_auth_matrix(route: RouteInfo, caller: str, live_server: LiveServer) -> None:
    assert len(route.requires) == 1, f"{route.label} must declare exactly one Require(...)"
    allowed = route.requires[0].roles
    headers = _auth_header(live_server.backend, caller)
    kwargs: dict[str, Any] = {"json": {}} if route.has_body else {}
    with httpx.Client(base_url=live_server.url, timeout=30) as client:
        r = client.request(route.method, fill_path(route), headers=headers, **kwargs)

    if caller in ("no-token", "revoked-token"):
        assert_problem(r, 401)
        challenge = r.headers.get("www-authenticate", "")
        assert challenge.startswith("Bearer"), r.headers
        if caller == "revoked-token":
            assert 'error="invalid_token"' in challenge
    elif Role(caller) not in allowed:
        body = assert_problem(r, 403)
        assert body["type"] == "/problems/forbidden", body
    else:
        assert r.status_code not in (401, 403), f"{route.label} refused {caller}: {r.status_code} {r.text}"
        assert r.status_code < 500, f"{route.label} as {caller}: {r.status_code} {r.text}"
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith(PROBLEM_JSON), r.text


def test_matrix_covers_every_operation_the_live_server_publishes(live_server: LiveServer) -> None:
    spec = httpx.get(f"{live_server.url}/openapi.json", timeout=30).json()
    published = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        if path.startswith(API_PREFIX)
        for method in ops
    }
    in_matrix = {(r.method, r.path) for r in API_ROUTES}
    assert published - in_matrix == set()
    hidden = in_matrix - published
    assert hidden == {(r.method, r.path) for r in API_ROUTES if not r.include_in_schema}


def test_route_table_of_the_backend_app_matches_collection(backend: Backend) -> None:
    app = create_app(backend.settings, db=backend.db)
    assert [(r.method, r.path, r.name) for r in route_table(app)] == [
        (r.method, r.path, r.name) for r in ROUTES
    ]


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
def test_public_routes_need_no_token(path: str, live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.url}{path}", timeout=30)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        ("Bearer cb_not-a-real-token", 'error="invalid_token"'),
        ("Bearer not-even-our-prefix", 'error="invalid_token"'),
        ("Basic dXNlcjpwYXNz", 'realm="casebridge"'),
        ("Bearer", 'realm="casebridge"'),
        ("cb_token-without-scheme", 'realm="casebridge"'),
    ],
)
def test_malformed_or_unknown_credentials_are_401(
    authorization: str, challenge: str, live_server: LiveServer
) -> None:
    r = httpx.get(
        f"{live_server.url}{API_PREFIX}/contacts", headers={"Authorization": authorization}, timeout=30
    )
    assert_problem(r, 401)
    assert challenge in r.headers["www-authenticate"]


def test_unauthenticated_write_is_refused_before_the_body_is_validated(live_server: LiveServer) -> None:
    r = httpx.post(f"{live_server.url}{API_PREFIX}/contacts", content=b"{not json", timeout=30)
    assert_problem(r, 401)


def test_the_guard_sees_a_route_without_require_or_with_two() -> None:
    """The route-table reader itself: a route with no Require, or two, or outside ApiRoute is visible."""
    from fastapi import APIRouter, Depends

    router = APIRouter(prefix="/things", route_class=ApiRoute)

    @router.get("")
    def forgot_auth() -> dict[str, str]:
        return {}

    @router.get("/{thing_id}", dependencies=[Depends(Require(Role.ADMIN)), Depends(Require(Role.STAFF))])
    def two_requires(thing_id: uuid.UUID) -> dict[str, str]:
        return {}

    plain = APIRouter(prefix="/plain")

    @plain.post("/{n}", dependencies=[Depends(Require(Role.ADMIN))])
    def not_an_api_route(n: int, body: dict[str, int]) -> dict[str, str]:
        return {}

    app = FastAPI()
    api = APIRouter(prefix=API_PREFIX)
    api.include_router(router)
    api.include_router(plain)
    app.include_router(api)
    table = {r.name: r for r in route_table(app)}
    assert len(table["forgot_auth"].requires) == 0
    assert len(table["two_requires"].requires) == 2
    assert not isinstance(table["not_an_api_route"].route, ApiRoute)
    assert table["not_an_api_route"].has_body
    assert fill_path(table["not_an_api_route"]) == f"{API_PREFIX}/plain/1"
    assert uuid.UUID(fill_path(table["two_requires"]).rsplit("/", 1)[1])

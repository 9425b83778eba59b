"""The sandbox's HTTP surface: Clio's API under ``/api/v4`` (with and without ``.json``), OAuth under
``/oauth``, the upload target for documents, and the admin API under ``/_sandbox`` (clearly apart).

Every ``/api/v4`` request passes, in order: request counting, fault injection, ``X-API-VERSION`` (410
for an unknown version, echoed on success), bearer-token authentication (401), per-token rate limiting
(``X-RateLimit-*`` on every response, 429 with ``Retry-After``), then the resource handler. Errors are
Clio's ``{"error": {"type", "message"}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio import oauth
from casebridge.sandbox.clio.errors import ClioError, bad_request, unauthorized
from casebridge.sandbox.clio.ratelimit import RateLimiter, Verdict
from casebridge.sandbox.clio.state import Record, SandboxConfig, SandboxState

API = "/api/v4"
DEFAULT_VERSION = "4.0.9"
VERSIONS = frozenset(f"4.0.{n}" for n in range(0, 14))  # 4.0.0 … 4.0.13; anything else is 410 Gone
_NUMERIC = re.compile(r"/\d+(?=/|$)")


@dataclass
class Ctx:
    """What a resource handler gets: the state, the request, and the authenticated user."""

    state: SandboxState
    request: Request
    token: Record
    base_url: str

    @property
    def user_id(self) -> int:
        return int(self.token["user_id"])

    async def data(self) -> dict[str, Any]:
        """The request's ``data`` object (JSON, or a form field ``data`` holding JSON)."""
        raw = await self.request.body()
        if not raw:
            raise bad_request("The request body must be a JSON object with a 'data' object")
        try:
            body = json.loads(raw)
        except ValueError:
            raise bad_request("The request body is not valid JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise bad_request("The request body must be a JSON object with a 'data' object")
        data: dict[str, Any] = body["data"]
        return data


def clio_error_response(exc: ClioError, extra: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers={**exc.headers, **(extra or {})})


def endpoint_name(method: str, path: str) -> str:
    """``GET /api/v4/contacts/{id}``: how request counts are keyed."""
    return f"{method} {_NUMERIC.sub('/{id}', path)}"


def create_app(state: SandboxState | None = None, config: SandboxConfig | None = None) -> FastAPI:
    from casebridge.sandbox.clio import admin, faults, resources, webhooks

    state = state or SandboxState(config)
    state.ensure_defaults()
    resources.install(state)
    limiter = RateLimiter(state.config.rate_limit, state.config.rate_limit_window)
    fault = faults.Faults()
    hooks = webhooks.Dispatcher(state, fault)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        hooks.stop()

    app = FastAPI(
        title="Clio Manage API v4 sandbox (Casebridge)",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.sandbox = state
    app.state.limiter = limiter
    app.state.faults = fault
    app.state.webhooks = hooks

    @app.middleware("http")
    async def clio_pipeline(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        path = request.scope["path"]
        if path.endswith(".json"):
            path = path[: -len(".json")]
            request.scope["path"] = path
            request.scope["raw_path"] = path.encode()
        if not path.startswith(API + "/") and path != API:
            return await call_next(request)
        state.requests_by_endpoint[endpoint_name(request.method, path)] += 1
        early = await fault.before_request(request)
        if early is not None:
            return early
        version = request.headers.get("x-api-version")
        if version is not None and version not in VERSIONS:
            return clio_error_response(
                ClioError(
                    410, "GoneError", f"API version {version} is not supported (this sandbox: 4.0.0-4.0.13)"
                )
            )
        auth = request.headers.get("authorization", "")
        raw = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        token = oauth.authenticate(state, raw) if raw else None
        if token is None:
            return clio_error_response(unauthorized())
        state.requests_by_token[raw] += 1
        forced = fault.force_rate_limited()
        verdict: Verdict = limiter.hit(raw, state.clock.now().timestamp(), force_limited=forced)
        if not verdict.allowed:
            if not forced:
                state.rate_limited_by_token[raw] += 1
            return clio_error_response(
                ClioError(
                    429, "RateLimited", f"Rate limit exceeded. Retry in {verdict.retry_after} seconds."
                ),
                verdict.headers(),
            )
        request.state.ctx = Ctx(
            state, request, token, state.config.public_url or str(request.base_url).rstrip("/")
        )
        try:
            response = await call_next(request)
        except ClioError as exc:  # raised outside a route (rare): still Clio's shape
            response = clio_error_response(exc)
        response.headers.update(verdict.headers())
        response.headers["X-API-VERSION"] = version or DEFAULT_VERSION
        return await fault.after_response(request, response)

    @app.middleware("http")
    async def date_header(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """``Date`` is the sandbox's clock (which the admin API can move), as Clio's is Clio's: expiry
        dates are on it. Serve the sandbox with uvicorn's own Date header off (``date_header=False``)."""
        response = await call_next(request)
        response.headers["Date"] = format_datetime(state.clock.now(), usegmt=True)
        return response

    @app.exception_handler(ClioError)
    async def on_clio_error(_: Request, exc: ClioError) -> JSONResponse:
        return clio_error_response(exc)

    @app.exception_handler(404)
    async def on_not_found(request: Request, _: Exception) -> Response:
        if request.url.path.startswith(API):
            return clio_error_response(
                ClioError(404, "RecordNotFound", f"No route matches {request.url.path}")
            )
        return JSONResponse({"detail": "Not Found"}, status_code=404)

    @app.exception_handler(405)
    async def on_method(request: Request, _: Exception) -> Response:
        return clio_error_response(
            ClioError(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.url.path}")
        )

    app.include_router(oauth.router(state))
    app.include_router(resources.router(), prefix=API)
    app.include_router(resources.outside_router())
    app.include_router(admin.router(state, limiter, fault, hooks), prefix="/_sandbox")
    return app


def ctx_of(request: Request) -> Ctx:
    ctx: Ctx = request.state.ctx
    return ctx

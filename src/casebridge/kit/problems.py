"""RFC 9457 problem details: the one error format of the API.

A problem's ``type`` is a relative URI (``/problems/<slug>``) documented in docs/errors.md. Validation
problems carry ``errors``: a list of ``{"field", "message", "code"}`` where ``field`` is a dotted path
such as ``body.emails.0.address`` or ``query.limit``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("casebridge.errors")

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Validation failed",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "content-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "rate-limited",
    500: "internal",
    503: "unavailable",
}


def field_error(field: str, message: str, code: str = "invalid") -> dict[str, str]:
    return {"field": field, "message": message, "code": code}


class Problem(Exception):
    """Raise anywhere in a request to answer with problem+json; the unit of work rolls back."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        errors: Sequence[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or _SLUGS.get(status, "error")
        self.title = title or _TITLES.get(status, "Error")
        self.errors = list(errors) if errors else None
        self.headers = headers
        self.extra = extra or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": f"/problems/{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            out["instance"] = instance
        if self.errors:
            out["errors"] = self.errors
        out.update(self.extra)
        return out


def not_found(entity: str, entity_id: object) -> Problem:
    return Problem(404, f"No {entity} with id {entity_id}.")


def validation(errors: Sequence[dict[str, str]], detail: str | None = None) -> Problem:
    return Problem(422, detail or "The request has invalid fields; see errors.", errors=errors)


def conflict(detail: str, slug: str = "conflict") -> Problem:
    return Problem(409, detail, slug=slug)


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    headers = dict(problem.headers or {})
    if request is not None and (rid := getattr(request.state, "request_id", None)):
        headers.setdefault("X-Request-Id", rid)
    return JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers
    )


def _loc_to_field(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid value"))
        ctx = err.get("ctx") or {}
        if isinstance(ctx.get("error"), Exception):
            msg = str(ctx["error"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(field_error(_loc_to_field(err.get("loc", ())), msg, str(err.get("type", "invalid"))))
    return out


def _flat_routes(routes: Iterable[Any]) -> Iterator[Any]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # FastAPI's lazily included router
            yield from contexts()
        else:
            yield route


def allowed_methods(request: Request) -> set[str]:
    """Every method some route accepts on this path (Starlette reports only the first route's)."""
    path = request.url.path
    methods: set[str] = set()
    for route in _flat_routes(request.app.router.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return methods


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation(validation_errors(exc)), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {request.url.path}."
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
            allowed = allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(sorted(allowed))
        return problem_response(Problem(exc.status_code, detail, headers=headers), request)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        # A uniqueness or reference rule enforced by the database, reached past the service's own checks
        # (typically a concurrent request). Nothing was written: the unit of work rolled back.
        log.info("integrity conflict on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(
            Problem(409, "The change conflicts with data written concurrently; read it again and retry."),
            request,
        )

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        return problem_response(
            Problem(
                412,
                "The resource was changed by another request while yours ran; fetch it again and reapply "
                "your change.",
            ),
            request,
        )

    @app.exception_handler(OperationalError)
    async def _db_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return problem_response(
            Problem(503, "The database is unavailable or busy; retry shortly.", headers={"Retry-After": "2"}),
            request,
        )

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem(500, "An internal error occurred; it has been logged with the request id."), request
        )

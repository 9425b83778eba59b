"""Pure-ASGI access middleware: the request counter and duration histogram, and one access log line.

It sits inside ``RequestIdMiddleware`` (which sets the request-id context variable), so its log line
carries the request id. Metrics are labelled with the route *template* (``/api/v1/jobs/{job_id}``),
never the raw path, so a client cannot grow the number of series; a path no route matches is
``unmatched`` and an unusual method is ``other``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casebridge.observability.metrics import HTTP_DURATION, HTTP_REQUESTS

access_log = logging.getLogger("casebridge.access")

UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Probes and scrapes arrive every few seconds: their access lines are DEBUG, not INFO.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _flat_routes(routes: Any) -> Any:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:  # FastAPI's lazily included router
            yield from contexts()
        else:
            yield route


def route_template(scope: Scope) -> str:
    """The template of the route that handled the request, e.g. ``/api/v1/jobs/{job_id}``."""
    # An included router's route (FastAPI >= 0.16x): the effective context knows the full template;
    # the route object itself knows only its path inside its router (without /api/v1).
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        template = getattr(fastapi_scope.get("effective_route_context"), "path_format", None)
        if isinstance(template, str):
            return template
    template = getattr(scope.get("route"), "path_format", None)
    if isinstance(template, str):
        return template
    # Routes the framework adds itself (/docs, /openapi.json) leave nothing in the scope: match them.
    app = scope.get("app")
    path = scope.get("path", "")
    for route in _flat_routes(getattr(getattr(app, "router", None), "routes", ())):
        regex = getattr(route, "path_regex", None)
        template = getattr(route, "path_format", None)
        if regex is not None and isinstance(template, str) and regex.match(path):
            return template
    return UNMATCHED


class AccessMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the application raises before answering, the server answers 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        route = route_template(scope)
        HTTP_REQUESTS.inc(method=method, route=route, status=str(status))
        HTTP_DURATION.observe(seconds, method=method, route=route)
        path = scope.get("path", "")
        level = logging.DEBUG if path in QUIET_PATHS and status < 400 else logging.INFO
        if access_log.isEnabledFor(level):
            client = scope.get("client")
            duration_ms = round(seconds * 1000, 2)
            access_log.log(
                level,
                "%s %s %d %.1fms",
                scope["method"],
                path,
                status,
                duration_ms,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "path": path,  # never the query string: it may carry anything
                    "status": status,
                    "duration_ms": duration_ms,
                    "client": client[0] if client else None,
                },
            )

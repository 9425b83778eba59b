"""GET /metrics: the Prometheus text exposition of this process, plus gauges read from the database.

Outside ``/api/v1`` and outside the OpenAPI document: it is for the monitoring system, not for API
clients. It needs no token unless ``CASEBRIDGE_METRICS_TOKEN`` is set, in which case a scraper sends
``Authorization: Bearer <that value>`` (Prometheus: ``authorization: {credentials: ...}``).
"""

from __future__ import annotations

import hmac
import logging
import os

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from casebridge.db.session import Database, unit_of_work
from casebridge.kit.problems import Problem
from casebridge.observability.metrics import (
    CONTENT_TYPE,
    REGISTRY,
    Family,
    collect_database,
    process_families,
)

METRICS_TOKEN_ENV = "CASEBRIDGE_METRICS_TOKEN"
log = logging.getLogger("casebridge.metrics")


def configured_token() -> str | None:
    """The bearer token /metrics requires, from ``CASEBRIDGE_METRICS_TOKEN`` (unset or empty: none)."""
    return os.environ.get(METRICS_TOKEN_ENV, "").strip() or None


def authorized(header: str | None, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, secret = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(secret.strip().encode(), token.encode())


def render(db: Database | None) -> str:
    """This process's metrics; with ``db``, also the gauges read from the database."""
    extra: list[Family] = process_families()
    if db is not None:
        up = Family("casebridge_database_up", "gauge", "1 when the database answered this scrape, else 0.")
        try:
            with unit_of_work(db.reader) as session:
                extra.extend(collect_database(session))
            up.add(1)
        except SQLAlchemyError as exc:
            log.warning("metrics: the database did not answer: %s", getattr(exc, "orig", exc))
            up.add(0)
        extra.append(up)
    return REGISTRY.render(extra)


def metrics_router(token: str | None) -> APIRouter:
    router = APIRouter(tags=["observability"])

    @router.get("/metrics", include_in_schema=False, response_class=Response)
    def metrics(request: Request) -> Response:
        """Prometheus metrics. No token needed unless CASEBRIDGE_METRICS_TOKEN is set."""
        if not authorized(request.headers.get("authorization"), token):
            raise Problem(
                401,
                "This server's /metrics needs 'Authorization: Bearer <CASEBRIDGE_METRICS_TOKEN>'.",
                headers={"WWW-Authenticate": 'Bearer realm="casebridge-metrics"'},
            )
        return Response(render(request.app.state.ctx.db), media_type=CONTENT_TYPE)

    return router

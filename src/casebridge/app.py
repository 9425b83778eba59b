"""The FastAPI application: one factory, used by `casebridge serve`, the tests and the benchmarks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from casebridge import __version__
from casebridge.config import Settings, load_settings
from casebridge.contacts.routes import router as contacts_router
from casebridge.db import migrate
from casebridge.db.session import Database
from casebridge.events.routes import router as events_router
from casebridge.jobs.builtin import build_registry
from casebridge.jobs.worker import Worker
from casebridge.kit import problems
from casebridge.kit.context import AppContext
from casebridge.kit.crypto import SecretBox
from casebridge.kit.middleware import RequestIdMiddleware
from casebridge.observability.middleware import AccessMiddleware
from casebridge.observability.routes import configured_token, metrics_router

API_PREFIX = "/api/v1"
DESCRIPTION = """
Casebridge is an API-first case-management platform. Every capability is a REST endpoint here.

* **Auth:** `Authorization: Bearer <token>` (`casebridge token create --role staff --name me`).
* **Errors:** RFC 9457 `application/problem+json`, with `errors[]` of `{field, message, code}`.
* **Concurrency:** every resource has an `etag`; send `If-Match` on PATCH/DELETE (412 on mismatch) and
  `If-None-Match` on GET (304).
* **Retries:** POST accepts `Idempotency-Key` (replayed for 24 hours; a different body gets 422).
* **Lists:** cursor paging with `limit` (≤ 200) and `cursor` (the previous page's `next_cursor`).
"""


def _operation_id(route: APIRoute) -> str:
    return route.name


def api_routers() -> list[APIRouter]:
    from casebridge.activities.routes import router as activities_router
    from casebridge.alerts.routes import matter_router as alerts_matter_router
    from casebridge.alerts.routes import router as alerts_router
    from casebridge.documents.routes import router as documents_router
    from casebridge.jobs.routes import router as jobs_router
    from casebridge.linked_services.routes import router as linked_services_router
    from casebridge.matters.routes import router as matters_router
    from casebridge.matters.routes import settings_router
    from casebridge.sync.routes import records as sync_records_router
    from casebridge.sync.routes import router as connections_router
    from casebridge.users.routes import router as users_router
    from casebridge.webhooks.routes import router as webhooks_router
    from casebridge.workflows.routes import router as workflows_router

    return [
        contacts_router,
        matters_router,
        documents_router,
        activities_router,
        users_router,
        events_router,
        settings_router,
        webhooks_router,
        linked_services_router,
        workflows_router,
        alerts_router,
        alerts_matter_router,
        jobs_router,
        connections_router,
        sync_records_router,
    ]


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> FastAPI:
    settings = settings or load_settings()
    settings.ensure_dirs()
    database = db or Database.from_url(settings.database_url, pool_size=settings.db_pool_size)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        worker = None
        if settings.embedded_worker:
            worker = Worker(
                database,
                build_registry(settings),
                settings=settings,
                concurrency=settings.worker_concurrency,
                lease_seconds=settings.job_lease_seconds,
            )
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await run_in_threadpool(worker.stop)
            from casebridge.sync.runtime import close_all

            close_all()
            if db is None:
                database.dispose()

    app = FastAPI(
        title="Casebridge API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.ctx = AppContext(
        settings=settings, db=database, secrets=SecretBox(settings.resolved_secret_key)
    )
    app.add_middleware(AccessMiddleware)  # observability: inside RequestIdMiddleware, so it sees the id
    app.add_middleware(RequestIdMiddleware)
    problems.install(app)

    api = APIRouter(prefix=API_PREFIX)
    for router in api_routers():
        api.include_router(router)
    app.include_router(api)
    from casebridge.connectors.clio.routes import router as clio_public_router

    app.include_router(clio_public_router)  # the OAuth callback and Clio's webhooks: no bearer token
    app.include_router(metrics_router(configured_token()))  # observability: GET /metrics

    @app.get("/healthz", tags=["health"], operation_id="healthz")
    def healthz() -> dict[str, str]:
        """Alive: the process answers. Needs no token."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], operation_id="readyz", response_model=None)
    def readyz() -> dict[str, Any] | JSONResponse:
        """Ready: the database answers and its schema is at the newest migration. Needs no token."""
        try:
            with database.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            current = migrate.current_revision(database.engine)
        except SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable", "detail": type(exc).__name__},
                status_code=503,
            )
        head = migrate.head_revision()
        body = {
            "status": "ok" if current == head else "unavailable",
            "database": "ok",
            "migration": current,
            "head": head,
        }
        if current != head:
            body["detail"] = "run `casebridge db upgrade`"
            return JSONResponse(body, status_code=503)
        return body

    return app

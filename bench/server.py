"""The benchmark's ASGI app: the real application plus a constant-returning ceiling endpoint.

Served by ``uvicorn --factory server:app`` (``bench/api.py`` starts it). Settings come from the
environment (``CASEBRIDGE_DATABASE_URL``, ``CASEBRIDGE_DATA_DIR``) like ``casebridge serve``.

``GET /_bench/ceiling`` goes through the same middleware (request ids) and exception handlers as every
API route, and runs in the same thread pool as the API's synchronous endpoints, but touches no database
and needs no token: it is what the framework and server cost on this machine, the ceiling the API's
figures are compared with.
"""

from __future__ import annotations

from fastapi import FastAPI

from casebridge.app import create_app
from casebridge.config import load_settings

CEILING_PATH = "/_bench/ceiling"


def app() -> FastAPI:
    application = create_app(load_settings())

    @application.get(CEILING_PATH, include_in_schema=False)
    def bench_ceiling() -> dict[str, str]:
        return {"status": "ok", "service": "casebridge"}

    return application

"""A small finance system served on loopback: the other side of the Clio Operate pattern.

It accepts ``POST <base>/payments`` from a Casebridge workflow (API key in ``X-API-Key``, or an OAuth2
bearer token from its own ``POST /oauth/token``), answers ``{"id": "PAY-<n>"}``, and *writes back*
through the Casebridge API with an integration token while it answers (``POST
/api/v1/activities/{reference}/bill``), as a real finance system marks a disbursement paid.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import _serve


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FinanceSystem:
    api_key: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    # Write-back through the Casebridge API: its URL and an integration token.
    casebridge_url: str | None = None
    casebridge_token: str | None = None
    # Fault injection: answer this status to the next N payment requests (or all, with -1).
    fail_status: int = 503
    fail_next: int = 0
    url: str = ""
    token_hits: int = 0
    tokens: set[str] = field(default_factory=set)
    payments: list[dict[str, Any]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    write_backs: list[tuple[int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"{self.url}/api"

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/api/health", self.health, methods=["GET"]),
                Route("/api/payments", self.pay, methods=["POST"]),
            ]
        )

    # --- endpoints --------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        with self.lock:
            self.token_hits += 1
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = "tok-" + secrets.token_hex(8)
        with self.lock:
            self.tokens.add(token)
        return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": 3600})

    def _authorised(self, request: Request) -> bool:
        if self.api_key is not None:
            return request.headers.get("x-api-key") == self.api_key
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self.lock:
            return scheme.lower() == "bearer" and token in self.tokens

    async def health(self, request: Request) -> Response:
        if not self._authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        return JSONResponse({"status": "ok"})

    async def pay(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"null")
        with self.lock:
            self.received.append(Received(request.method, request.url.path, dict(request.headers), body))
        if not self._authorised(request):
            return JSONResponse({"error": "unauthorised"}, status_code=401)
        with self.lock:
            if self.fail_next:
                self.fail_next -= 1 if self.fail_next > 0 else 0
                return JSONResponse({"error": "ledger unavailable"}, status_code=self.fail_status)
            payment_id = f"PAY-{len(self.payments) + 1}"
            self.payments.append({"id": payment_id, **body})
        if self.casebridge_url:
            await run_in_threadpool(self.write_back, str(body["reference"]), payment_id)
        return JSONResponse({"id": payment_id, "status": "scheduled"}, status_code=201)

    def write_back(self, activity_id: str, payment_id: str) -> None:
        """Mark the disbursement billed in Casebridge, through its API, before answering."""
        response = httpx.post(
            f"{self.casebridge_url}/api/v1/activities/{activity_id}/bill",
            json={"bill_reference": payment_id},
            headers={"Authorization": f"Bearer {self.casebridge_token}"},
            timeout=30,
        )
        with self.lock:
            self.write_backs.append((response.status_code, response.text))

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()


@contextmanager
def serving(finance: FinanceSystem) -> Iterator[FinanceSystem]:
    server, thread, url = _serve(finance.app())
    finance.url = url
    try:
        yield finance
    finally:
        server.should_exit = True
        thread.join(timeout=10)

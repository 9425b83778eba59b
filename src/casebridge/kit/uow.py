"""The request's unit of work, authentication and Idempotency-Key handling, as one APIRoute class.

Every route under ``/api/v1`` is an :class:`ApiRoute`. Its handler:

1. authenticates the bearer token in a short read transaction of its own (401 before anything else);
2. opens the request's session (a writer for POST/PUT/PATCH/DELETE) and hands it to the endpoint;
3. for a POST with ``Idempotency-Key``: replays a stored response for the same key and request, or
   answers 422 when the key was used for a different request;
4. on success stores the idempotent response *in the same transaction* as the change, then commits
   before the response leaves, so a client never sees 2xx for a change that did not commit;
5. on any error rolls back: no row, no event, no idempotency record is left behind.

Only successful (2xx) responses are kept for replay: an error response means nothing changed, so a
retry with the same key simply runs again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from casebridge.auth.service import authenticate, touch
from casebridge.db.session import Database, unit_of_work
from casebridge.db.types import utcnow
from casebridge.events.outbox import set_actor
from casebridge.kit.context import Principal, app_context
from casebridge.kit.problems import Problem, problem_response
from casebridge.models import IdempotencyKey

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
IDEMPOTENCY_HEADER = "idempotency-key"
# Set by streaming endpoints (uploads) once they have hashed the body they consumed.
BODY_SHA256 = "body_sha256"
STREAMING_BODY = "x-streaming-body"
_REPLAY_HEADERS = ("content-type", "etag", "location")

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def request_session(request: Request) -> Session:
    session: Session = request.state.session
    return session


def current_principal(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Problem(
            401,
            "Send an API token as 'Authorization: Bearer <token>'; create one with `casebridge token create`.",
            headers={"WWW-Authenticate": 'Bearer realm="casebridge"'},
        )
    db = app_context(request).db
    with unit_of_work(db.reader) as session:
        found = authenticate(session, secret.strip())
    if found is None:
        raise Problem(
            401,
            "The API token is unknown or has been revoked.",
            headers={"WWW-Authenticate": 'Bearer realm="casebridge", error="invalid_token"'},
        )
    if found.stale_last_used:  # at most every few minutes per token, so reads rarely write
        with unit_of_work(db.writer) as session:
            touch(session, found.principal.token_id)
    return found.principal


def _fingerprint(request: Request, body_sha256: str) -> str:
    raw = "\n".join([request.method, request.url.path, str(request.url.query), body_sha256])
    return hashlib.sha256(raw.encode()).hexdigest()


async def _hash_stream(request: Request) -> str:
    digest = hashlib.sha256()
    async for chunk in request.stream():
        digest.update(chunk)
    return digest.hexdigest()


def _find_key(session: Session, principal: Principal, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.token_id == principal.token_id,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at > utcnow(),
        )
    )


def _lookup_key(db: Database, principal: Principal, key: str) -> IdempotencyKey | None:
    with unit_of_work(db.reader) as session:
        return _find_key(session, principal, key)


def _replay(row: IdempotencyKey, fingerprint: str) -> Response:
    if row.request_hash != fingerprint:
        raise Problem(
            422,
            "This Idempotency-Key was already used with a different request; use a new key for a new request.",
            slug="idempotency-key-reused",
        )
    headers = dict(row.response_headers)
    headers["Idempotent-Replayed"] = "true"
    return Response(content=row.response_body, status_code=row.status_code, headers=headers)


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        inner = super().get_route_handler()
        streaming = bool((self.openapi_extra or {}).get(STREAMING_BODY))

        async def handler(request: Request) -> Response:
            try:
                return await self._handle(request, inner, streaming)
            except Problem as problem:
                return problem_response(problem, request)

        return handler

    async def _handle(self, request: Request, inner: Handler, streaming: bool) -> Response:
        ctx = app_context(request)
        principal = await run_in_threadpool(_authenticate, request)
        request.state.principal = principal
        write = request.method in WRITE_METHODS
        key = request.headers.get(IDEMPOTENCY_HEADER) if request.method == "POST" else None
        if key is not None and not (0 < len(key) <= 255):
            raise Problem(422, "Idempotency-Key must be 1 to 255 characters.", slug="validation")

        body_sha256: str | None = None
        if key is not None:
            if not streaming:
                body_sha256 = hashlib.sha256(await request.body()).hexdigest()
            existing = await run_in_threadpool(_lookup_key, ctx.db, principal, key)
            if existing is not None:
                if body_sha256 is None:
                    body_sha256 = await _hash_stream(request)
                return _replay(existing, _fingerprint(request, body_sha256))

        session = (ctx.db.writer if write else ctx.db.reader)()
        set_actor(session, principal, getattr(request.state, "request_id", None))
        request.state.session = session
        try:
            response = await inner(request)
            if not write or response.status_code >= 400:
                await run_in_threadpool(session.rollback)
                return response
            if key is not None:
                body_sha256 = body_sha256 or getattr(request.state, BODY_SHA256, None)
                if body_sha256 is None:
                    raise RuntimeError("streaming endpoint did not record the body hash for idempotency")
                replay = await run_in_threadpool(
                    self._store_key,
                    session,
                    request,
                    principal,
                    key,
                    _fingerprint(request, body_sha256),
                    response,
                )
                if replay is not None:
                    return replay
            await run_in_threadpool(session.commit)
            return response
        except BaseException:
            await run_in_threadpool(session.rollback)
            raise
        finally:
            await run_in_threadpool(session.close)

    @staticmethod
    def _store_key(
        session: Session,
        request: Request,
        principal: Principal,
        key: str,
        fingerprint: str,
        response: Response,
    ) -> Response | None:
        """Store the response for replay; if a concurrent request won the key, replay that one instead."""
        ctx = app_context(request)
        session.flush()  # the change's own constraint errors surface here, not as a key race below
        now = utcnow()
        session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.token_id == principal.token_id,
                IdempotencyKey.key == key,
                IdempotencyKey.expires_at <= now,
            )
        )
        session.add(
            IdempotencyKey(
                token_id=principal.token_id,
                key=key,
                method=request.method,
                path=request.url.path,
                request_hash=fingerprint,
                status_code=response.status_code,
                response_headers={k: v for k, v in response.headers.items() if k.lower() in _REPLAY_HEADERS},
                response_body=bytes(response.body),
                created_at=now,
                expires_at=now + timedelta(hours=ctx.settings.idempotency_ttl_hours),
            )
        )
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            winner = _lookup_key(ctx.db, principal, key)
            if winner is None:
                raise Problem(
                    409, "A request with this Idempotency-Key is still in progress; retry shortly."
                ) from None
            return _replay(winner, fingerprint)
        return None


def purge_expired_keys(session: Session) -> int:
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)

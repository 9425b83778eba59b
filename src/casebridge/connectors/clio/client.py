"""An HTTP client for one Clio connection: pinned API version, OAuth tokens refreshed before they expire
and once on a 401, a permit from the shared rate budget before every request, typed errors, and a log
of the calls made (for the sync journal).

Thread-safe: one ``httpx.Client`` per process is shared (connection pooling); tokens are cached per
process and per connection, and refreshed under nobody's lock (Clio's refresh tokens are reusable and a
new access token does not revoke the old one, so two processes refreshing at once is harmless).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import select, update

from casebridge.connectors.clio import oauth
from casebridge.db.session import Database, unit_of_work
from casebridge.db.types import utcnow
from casebridge.kit.crypto import SecretBox
from casebridge.models import Connection
from casebridge.sync import ratelimit
from casebridge.sync.errors import (
    NeedsPerson,
    NotFound,
    PreconditionFailed,
    RateLimited,
    Transient,
    Unauthorized,
)

log = logging.getLogger("casebridge.clio")

API_VERSION = "4.0.9"
REFRESH_BEFORE = timedelta(days=1)  # refresh an access token this long before it expires
# Wait for a permit in the thread up to this long, longer: raise RateLimited (the job snoozes).
# Bulk work (backfills, full reconciles) waits in its thread: it has nothing better to do.
MAX_INLINE_WAIT = 3.0
MAX_INLINE_WAIT_BULK = 90.0


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    status: int | None
    ms: float

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.status if self.status is not None else 'no answer'} {self.ms:.0f}ms"


@dataclass
class Runtime:
    """What every Clio client of a process shares."""

    db: Database
    secrets: SecretBox
    timeout: float = 30.0
    _http: httpx.Client | None = None
    _tokens: dict[uuid.UUID, tuple[str, datetime]] = field(default_factory=dict)
    _clock_offsets: dict[uuid.UUID, timedelta] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def http(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(
                    timeout=httpx.Timeout(self.timeout, connect=min(10.0, self.timeout)),
                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
                )
            return self._http

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    # the remote clock ---------------------------------------------------------------------------

    def observe_clock(self, connection_id: uuid.UUID, date_header: str | None) -> None:
        """Remember how far the remote's clock (its ``Date`` header) is from ours: webhook expiry is
        on its clock."""
        if not date_header:
            return
        try:
            theirs = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            return
        if theirs.tzinfo is None:
            return
        with self._lock:
            self._clock_offsets[connection_id] = theirs - utcnow()

    def remote_now(self, connection_id: uuid.UUID) -> datetime:
        with self._lock:
            offset = self._clock_offsets.get(connection_id, timedelta())
        return utcnow() + offset

    # tokens ---------------------------------------------------------------------------------------

    def forget_token(self, connection_id: uuid.UUID) -> None:
        with self._lock:
            self._tokens.pop(connection_id, None)

    def access_token(self, connection_id: uuid.UUID, *, failed: str | None = None) -> str:
        """The connection's access token, refreshed when it expires within a day, or when ``failed``
        (the token that just got a 401) is still the newest one stored."""
        with self._lock:
            cached = self._tokens.get(connection_id)
        if cached is not None and failed is None and cached[1] - utcnow() > REFRESH_BEFORE:
            return cached[0]
        with unit_of_work(self.db.reader) as session:
            conn = session.get(Connection, connection_id)
            if conn is None or conn.access_token_encrypted is None or conn.token_expires_at is None:
                raise Unauthorized("the connection has no tokens: connect it to Clio first")
            token = self.secrets.decrypt(conn.access_token_encrypted)
            expires = conn.token_expires_at
            base_url, client_id = conn.base_url, conn.client_id
            client_secret = self.secrets.decrypt(conn.client_secret_encrypted)
            refresh_token = (
                self.secrets.decrypt(conn.refresh_token_encrypted) if conn.refresh_token_encrypted else None
            )
        must_refresh = (failed is not None and failed == token) or expires - utcnow() <= REFRESH_BEFORE
        if must_refresh:
            if refresh_token is None:
                raise Unauthorized("the connection has no refresh token: connect it to Clio again")
            fresh = oauth.refresh(self.http, base_url, client_id, client_secret, refresh_token)
            with unit_of_work(self.db.writer) as session:
                session.execute(
                    update(Connection)
                    .where(Connection.id == connection_id)
                    .values(
                        access_token_encrypted=self.secrets.encrypt(fresh.access_token),
                        refresh_token_encrypted=self.secrets.encrypt(fresh.refresh_token),
                        token_expires_at=fresh.expires_at,
                    )
                )
            token, expires = fresh.access_token, fresh.expires_at
            log.info("refreshed the Clio access token of connection %s", connection_id)
        with self._lock:
            self._tokens[connection_id] = (token, expires)
        return token


class ClioClient:
    """Requests to one connection's Clio API, each after a rate-budget permit."""

    def __init__(
        self,
        runtime: Runtime,
        connection_id: uuid.UUID,
        base_url: str,
        *,
        api_version: str = API_VERSION,
        bulk: bool = False,
        calls: list[Call] | None = None,
    ) -> None:
        self.runtime = runtime
        self.connection_id = connection_id
        self.api = f"{base_url.rstrip('/')}/api/v4"
        self.api_version = api_version
        self.bulk = bulk
        self.calls: list[Call] = calls if calls is not None else []

    @classmethod
    def for_connection(cls, runtime: Runtime, connection_id: uuid.UUID, **kwargs: Any) -> ClioClient:
        with unit_of_work(runtime.db.reader) as session:
            row = session.execute(
                select(Connection.base_url, Connection.api_version).where(Connection.id == connection_id)
            ).first()
        if row is None:
            raise Unauthorized(f"no connection {connection_id}")
        return cls(runtime, connection_id, row.base_url, api_version=row.api_version, **kwargs)

    # the one way out --------------------------------------------------------------------------------

    def _permit(self) -> None:
        waited = 0.0
        while True:
            wait = ratelimit.acquire(self.runtime.db, self.connection_id, bulk=self.bulk)
            if wait <= 0:
                return
            if waited + wait > (MAX_INLINE_WAIT_BULK if self.bulk else MAX_INLINE_WAIT):
                raise RateLimited(wait)
            time.sleep(wait)
            waited += wait

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        if_match: str | None = None,
        url: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """``path`` is under ``/api/v4`` (``/contacts/5``); ``url`` is a full URL Clio gave us (paging)."""
        target = url or f"{self.api}{path}"
        shown = path if url is None else httpx.URL(url).path.removeprefix("/api/v4")
        failed: str | None = None
        for attempt in (1, 2):
            self._permit()
            try:
                token = self.runtime.access_token(self.connection_id, failed=failed)
            except BaseException:
                ratelimit.release(self.runtime.db, self.connection_id, None, None)  # nothing was sent
                raise
            sent = {
                "Authorization": f"Bearer {token}",
                "X-API-VERSION": self.api_version,
                "Accept": "application/json",
                **(headers or {}),
            }
            if if_match is not None:
                sent["If-Match"] = if_match
            started = time.perf_counter()
            try:
                response = self.runtime.http.request(method, target, params=params, json=json, headers=sent)
                response.read()
            except httpx.HTTPError as exc:
                ratelimit.release(self.runtime.db, self.connection_id, None, None)
                self.calls.append(Call(method, shown, None, (time.perf_counter() - started) * 1000))
                raise Transient(
                    f"{method} {shown}: no answer from Clio ({type(exc).__name__}: {exc})",
                    unknown_outcome=method != "GET",
                ) from exc
            ratelimit.release(self.runtime.db, self.connection_id, response.status_code, response.headers)
            self.runtime.observe_clock(self.connection_id, response.headers.get("date"))
            self.calls.append(
                Call(method, shown, response.status_code, (time.perf_counter() - started) * 1000)
            )
            if response.status_code == 401 and attempt == 1:
                failed = token
                continue
            return self._check(method, shown, response)
        raise AssertionError("unreachable")

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                return f"{error.get('type', 'Error')}: {error.get('message', '')}"
        except ValueError:
            pass
        return response.text[:300]

    def _check(self, method: str, path: str, response: httpx.Response) -> httpx.Response:
        status = response.status_code
        if status < 300 or status == 303 or status == 304:
            return response
        what = f"{method} {path} answered {status}: {self._message(response)}"
        if status == 401:
            raise Unauthorized(what)
        if status == 404:
            raise NotFound(what)
        if status == 412:
            raise PreconditionFailed(what)
        if status == 429:
            raise RateLimited(float(response.headers.get("retry-after") or 1), what)
        if status >= 500:
            raise Transient(what)
        raise NeedsPerson(what)

    # conveniences ---------------------------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = self.request("GET", path, params=params).json()
        return body

    def pages(self, path: str, params: dict[str, Any]) -> Iterator[tuple[list[dict[str, Any]], str | None]]:
        """Each page of a list and the URL of the next one (cursor paging: follow ``meta.paging.next``)."""
        next_url: str | None = None
        while True:
            if next_url is None:
                body = self.get(path, params)
            else:
                body = self.request("GET", path, url=next_url).json()
            next_url = ((body.get("meta") or {}).get("paging") or {}).get("next")
            yield list(body.get("data") or []), next_url
            if not next_url:
                return

    def page_at(self, url: str) -> tuple[list[dict[str, Any]], str | None]:
        body = self.request("GET", "", url=url).json()
        return list(body.get("data") or []), ((body.get("meta") or {}).get("paging") or {}).get("next")

"""Calling a linked service: its base URL, its auth, OAuth2 token caching, and redaction for logs.

``LinkedServiceClient(config).request(method, path, json=...)`` sends one request to
``base_url + path`` with the service's auth applied:

- ``none``: nothing;
- ``api_key``: the key in a header (``Authorization: Bearer <key>`` by default, or e.g. ``X-API-Key``);
- ``basic``: HTTP Basic with the configured user name and the secret as password;
- ``oauth2_client_credentials``: a bearer token from the token URL (``grant_type=client_credentials``),
  cached in this process until shortly before ``expires_in``; a 401 from the service drops the cached
  token and the request is sent once more with a fresh one.

Paths are always relative to the base URL (a template cannot send the credentials to another host),
and redirects are not followed. Every value that could reveal a credential (the secret, the Basic
header, the access token, auth headers) is replaced by ``[redacted]`` by :meth:`redact`, which the
workflow step log and every error message go through.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urljoin, urlsplit

import httpx

from casebridge.kit.crypto import SecretBox
from casebridge.models import LinkedService

REDACTED = "[redacted]"
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "apikey", "cookie", "set-cookie"}
)
MAX_TEXT = 64 * 1024
# A cached token is used until this many seconds before it expires (or a tenth of its life if shorter).
TOKEN_EXPIRY_MARGIN = 30.0
DEFAULT_TOKEN_LIFETIME = 300.0


class LinkedServiceError(Exception):
    """The service could not be reached, or its token endpoint refused us. ``retryable`` says whether
    trying again later may help (network errors, 5xx, 429) or a person must fix something."""

    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


@dataclass(frozen=True)
class ServiceConfig:
    """Everything needed to call a service, detached from the database session."""

    id: uuid.UUID
    name: str
    base_url: str
    auth_type: str
    auth_config: dict[str, Any]
    secret: str | None = field(repr=False)
    timeout: float

    @classmethod
    def of(cls, row: LinkedService, box: SecretBox) -> ServiceConfig:
        return cls(
            id=row.id,
            name=row.name,
            base_url=row.base_url,
            auth_type=row.auth_type,
            auth_config=dict(row.auth_config or {}),
            secret=box.decrypt(row.secret_encrypted) if row.secret_encrypted else None,
            timeout=row.timeout_seconds,
        )


@dataclass
class ServiceResponse:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON when the service sent JSON, else text (truncated)

    def as_data(self) -> dict[str, Any]:
        return {"status": self.status, "headers": self.headers, "body": self.body}


# --- redaction ----------------------------------------------------------------------------------------


def redact(value: Any, secrets: Iterable[str], extra_headers: Iterable[str] = ()) -> Any:
    """``value`` with every occurrence of a secret, and every auth header's value, replaced."""
    needles = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)
    headers = SENSITIVE_HEADERS | {h.lower() for h in extra_headers}

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for needle in needles:
                if needle in v:
                    v = v.replace(needle, REDACTED)
            return v
        if isinstance(v, dict):
            return {k: REDACTED if str(k).lower() in headers else walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x) for x in v]
        return v

    return walk(value)


# --- OAuth2 token cache -------------------------------------------------------------------------------


@dataclass
class _CachedToken:
    token: str
    good_until: float  # time.monotonic()


_tokens: dict[str, _CachedToken] = {}
_key_locks: dict[str, threading.Lock] = {}
_tokens_lock = threading.Lock()


def clear_token_cache() -> None:
    with _tokens_lock:
        _tokens.clear()


def _token_key(config: ServiceConfig) -> str:
    c = config.auth_config
    raw = "\n".join(
        str(x)
        for x in (
            config.id,
            c.get("token_url"),
            c.get("client_id"),
            c.get("scope"),
            c.get("audience"),
            config.secret,
        )
    )
    return hashlib.sha256(raw.encode()).hexdigest()


def _lock_for(key: str) -> threading.Lock:
    with _tokens_lock:
        return _key_locks.setdefault(key, threading.Lock())


# --- the client ---------------------------------------------------------------------------------------


def join_url(base_url: str, path: str) -> str:
    if "://" in path or path.startswith("//") or "\\" in path:
        raise LinkedServiceError(
            f"the path {path!r} must be relative to the service's base URL", retryable=False
        )
    return base_url.rstrip("/") + "/" + path.lstrip("/") if path else base_url


class LinkedServiceClient:
    def __init__(self, config: ServiceConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport
        self._access_token: str | None = None
        # The headers of the last request as sent, with auth values redacted (for step logs).
        self.last_request_headers: dict[str, str] = {}

    # redaction ---------------------------------------------------------------------------------------

    def secret_values(self) -> list[str]:
        out: list[str] = []
        secret = self.config.secret
        if secret:
            out.append(secret)
            if self.config.auth_type == "basic":
                user = str(self.config.auth_config.get("username", ""))
                out.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
            if self.config.auth_type == "oauth2_client_credentials":
                client_id = quote_plus(str(self.config.auth_config.get("client_id", "")))
                out.append(base64.b64encode(f"{client_id}:{quote_plus(secret)}".encode()).decode())
                out.append(quote_plus(secret))
        if self._access_token:
            out.append(self._access_token)
        return out

    def redact(self, value: Any) -> Any:
        header = self.config.auth_config.get("header_name")
        return redact(value, self.secret_values(), [header] if isinstance(header, str) else [])

    # auth --------------------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        kind, cfg, secret = self.config.auth_type, self.config.auth_config, self.config.secret
        if kind == "none":
            return {}
        if not secret:
            raise LinkedServiceError(
                f"linked service '{self.config.name}' uses {kind} auth but has no secret stored",
                retryable=False,
            )
        if kind == "api_key":
            header = str(cfg.get("header_name") or "Authorization")
            prefix = cfg.get("prefix")
            if prefix is None:
                prefix = "Bearer " if header.lower() == "authorization" else ""
            return {header: f"{prefix}{secret}"}
        if kind == "basic":
            raw = f"{cfg.get('username', '')}:{secret}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if kind == "oauth2_client_credentials":
            return {"Authorization": f"Bearer {self._token()}"}
        raise LinkedServiceError(f"unknown auth type {kind!r}", retryable=False)

    def _token(self, *, refresh: bool = False) -> str:
        key = _token_key(self.config)
        with _lock_for(key):
            cached = _tokens.get(key)
            if cached is not None and not refresh and cached.good_until > time.monotonic():
                self._access_token = cached.token
                return cached.token
            token, lifetime = self._fetch_token()
            margin = min(TOKEN_EXPIRY_MARGIN, lifetime / 10)
            with _tokens_lock:
                _tokens[key] = _CachedToken(token, time.monotonic() + lifetime - margin)
            self._access_token = token
            return token

    def _fetch_token(self) -> tuple[str, float]:
        cfg, secret = self.config.auth_config, self.config.secret or ""
        url = urljoin(self.config.base_url, str(cfg.get("token_url", "")))
        form = {"grant_type": "client_credentials"}
        for name in ("scope", "audience"):
            if cfg.get(name):
                form[name] = str(cfg[name])
        headers = {"Accept": "application/json"}
        if cfg.get("client_auth") == "client_secret_basic":  # RFC 6749 2.3.1: form-encoded, then Basic
            pair = f"{quote_plus(str(cfg.get('client_id', '')))}:{quote_plus(secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = str(cfg.get("client_id", ""))
            form["client_secret"] = secret
        where = urlsplit(url).path or "/"
        try:
            with self._http() as http:
                response = http.post(url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise LinkedServiceError(
                self.redact(f"token request to {where} failed: {type(exc).__name__}: {exc}"), retryable=True
            ) from None
        if response.status_code != 200:
            retryable = response.status_code >= 500 or response.status_code == 429
            raise LinkedServiceError(
                self.redact(f"token endpoint {where} answered {response.status_code}: {response.text[:500]}"),
                retryable=retryable,
                status=response.status_code,
            )
        try:
            payload = response.json()
            token = str(payload["access_token"])
        except (ValueError, KeyError, TypeError):
            raise LinkedServiceError(
                f"token endpoint {where} answered without an access_token", retryable=False
            ) from None
        try:
            lifetime = float(payload.get("expires_in", DEFAULT_TOKEN_LIFETIME))
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, max(1.0, lifetime)

    # requests ----------------------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        return httpx.Client(timeout=self.config.timeout, follow_redirects=False, transport=self._transport)

    def url_for(self, path: str) -> str:
        return join_url(self.config.base_url, path)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ServiceResponse:
        url = self.url_for(path)
        sent = {"Accept": "application/json", "User-Agent": "Casebridge", **(headers or {})}
        response = self._send(method, url, path, json, params, sent, self._auth_headers())
        if response.status_code == 401 and self.config.auth_type == "oauth2_client_credentials":
            fresh = {"Authorization": f"Bearer {self._token(refresh=True)}"}
            response = self._send(method, url, path, json, params, sent, fresh)
        return _parse(response)

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        body: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        auth: dict[str, str],
    ) -> httpx.Response:
        merged = {**headers, **auth}
        self.last_request_headers = self.redact(merged)
        kwargs: dict[str, Any] = {"params": params, "headers": merged}
        if body is not None:
            kwargs["json"] = body
        try:
            with self._http() as http:
                return http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise LinkedServiceError(
                self.redact(
                    f"{method} {path}: no answer from '{self.config.name}': {type(exc).__name__}: {exc}"
                ),
                retryable=True,
            ) from None


def _parse(response: httpx.Response) -> ServiceResponse:
    body: Any
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            body = response.json()
        except ValueError:
            body = response.text[:MAX_TEXT]
    else:
        body = response.text[:MAX_TEXT] if response.content else None
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() not in ("set-cookie",)}
    return ServiceResponse(status=response.status_code, headers=headers, body=body)

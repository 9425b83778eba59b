"""Clio Manage's OAuth 2.0 authorization-code grant (NOTES.md §1): authorize, exchange, refresh, revoke.

Access tokens last 30 days; refresh tokens never expire, are not rotated and can be reused until the
grant is revoked. Each region is its own host with its own accounts: a token from one is a 401 in another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import httpx

from casebridge.db.types import utcnow
from casebridge.sync.errors import Transient, Unauthorized

REGIONS = {
    "us": "https://app.clio.com",
    "ca": "https://ca.app.clio.com",
    "eu": "https://eu.app.clio.com",
    "au": "https://au.app.clio.com",
}
DEFAULT_EXPIRES_IN = 2_592_000  # 30 days, when the token response does not say


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: datetime


class OAuthError(Unauthorized):
    """The authorization server refused: a bad code, client, secret or redirect URI, or a revoked grant."""


def authorize_url(
    base_url: str, client_id: str, redirect_uri: str, state: str, *, sandbox_auto_approve: bool = False
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "redirect_on_decline": "true",
    }
    if sandbox_auto_approve:
        params["sandbox_auto_approve"] = "true"  # understood only by Casebridge's Clio sandbox
    return f"{base_url.rstrip('/')}/oauth/authorize?{urlencode(params)}"


def _token_request(
    http: httpx.Client, base_url: str, form: dict[str, str], previous_refresh: str | None
) -> Tokens:
    try:
        response = http.post(f"{base_url.rstrip('/')}/oauth/token", data=form)
    except httpx.HTTPError as exc:
        raise Transient(f"Clio's token endpoint did not answer: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 500:
        raise Transient(f"Clio's token endpoint answered {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        reason = body.get("error_description") or body.get("error") or response.text[:200]
        raise OAuthError(f"Clio refused the token request ({response.status_code}): {reason}")
    refresh = body.get("refresh_token") or previous_refresh
    if not refresh:
        raise OAuthError("Clio's token response has no refresh_token")
    expires_in = int(body.get("expires_in") or DEFAULT_EXPIRES_IN)
    return Tokens(str(body["access_token"]), str(refresh), utcnow() + timedelta(seconds=expires_in))


def exchange_code(
    http: httpx.Client, base_url: str, client_id: str, client_secret: str, code: str, redirect_uri: str
) -> Tokens:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "client_secret": client_secret,
        "redirect_uri": redirect_uri,
    }
    return _token_request(http, base_url, form, None)


def refresh(
    http: httpx.Client, base_url: str, client_id: str, client_secret: str, refresh_token: str
) -> Tokens:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    return _token_request(http, base_url, form, refresh_token)


def deauthorize(http: httpx.Client, base_url: str, access_token: str) -> bool:
    """Revoke the grant; True when Clio confirmed (a grant already gone is not an error for us)."""
    try:
        response = http.post(
            f"{base_url.rstrip('/')}/oauth/deauthorize",
            data={"token": access_token},
            headers={"Authorization": f"Bearer {access_token}"},
        )
    except httpx.HTTPError:
        return False
    return response.status_code in (200, 204, 401)

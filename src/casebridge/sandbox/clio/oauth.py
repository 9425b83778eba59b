"""OAuth 2.0 as Clio Manage runs it (NOTES.md §1): authorization code grant only.

- ``GET /oauth/authorize``: a consent page for the sandbox user; ``sandbox_auto_approve=true`` (a
  sandbox-only parameter) approves at once so tests and the demo run unattended. The code lasts
  10 minutes and is single-use; ``redirect_uri`` must exactly match one registered on the app.
- ``POST /oauth/token``: ``authorization_code`` and ``refresh_token`` grants, form-encoded. Access tokens
  last 30 days; refresh tokens never expire, are not rotated and are reusable until revoked.
- ``POST /oauth/deauthorize``: revokes the grant behind the bearer token (its access tokens and its
  refresh token).
"""

from __future__ import annotations

import html
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from casebridge.sandbox.clio.state import Record, SandboxState, iso

ACCESS_TOKEN_SECONDS = 30 * 24 * 3600
CODE_SECONDS = 600


def register_app(
    state: SandboxState,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    redirect_uris: list[str],
    name: str = "Sandbox app",
) -> Record:
    with state.lock:
        app: Record = {
            "id": state.next_id("oauth_apps"),
            "name": name,
            "client_id": client_id or secrets.token_urlsafe(24),
            "client_secret": client_secret or secrets.token_urlsafe(32),
            "redirect_uris": list(redirect_uris),
            "created_at": iso(state.clock.now()),
        }
        existing = find_app(state, str(app["client_id"]))
        if existing is not None:
            app["id"] = existing["id"]
        return state.put("oauth_apps", app)


def find_app(state: SandboxState, client_id: str) -> Record | None:
    return next((a for a in state.all("oauth_apps") if a["client_id"] == client_id), None)


def issue_token(state: SandboxState, grant: Record) -> dict[str, Any]:
    """A new access token on ``grant`` (an authorization), returned as the token endpoint answers."""
    now = state.clock.now()
    token = {
        "id": state.next_id("oauth_tokens"),
        "access_token": secrets.token_urlsafe(32),
        "grant_id": grant["id"],
        "user_id": grant["user_id"],
        "expires_at": iso(now + timedelta(seconds=ACCESS_TOKEN_SECONDS)),
    }
    state.put("oauth_tokens", token)
    return {
        "token_type": "bearer",
        "access_token": token["access_token"],
        "expires_in": ACCESS_TOKEN_SECONDS,
        "refresh_token": grant["refresh_token"],
    }


def grant_for(state: SandboxState, app: Record, user_id: int) -> Record:
    grant = {
        "id": state.next_id("oauth_grants"),
        "client_id": app["client_id"],
        "user_id": user_id,
        "refresh_token": secrets.token_urlsafe(32),
        "revoked": False,
        "created_at": iso(state.clock.now()),
    }
    return state.put("oauth_grants", grant)


def authenticate(state: SandboxState, access_token: str) -> Record | None:
    """The live token record for ``access_token``: not expired, its grant not revoked."""
    token = next((t for t in state.all("oauth_tokens") if t["access_token"] == access_token), None)
    if token is None or datetime.fromisoformat(token["expires_at"]) <= state.clock.now():
        return None
    grant = state.get("oauth_grants", token["grant_id"])
    if grant is None or grant["revoked"]:
        return None
    return token


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _redirect(uri: str, params: dict[str, str]) -> RedirectResponse:
    sep = "&" if "?" in uri else "?"
    return RedirectResponse(f"{uri}{sep}{urlencode(params)}", status_code=302)


def router(state: SandboxState) -> APIRouter:
    r = APIRouter()

    def _check(params: dict[str, str]) -> tuple[Record, str] | Response:
        app = find_app(state, params.get("client_id", ""))
        if app is None:
            return HTMLResponse("<h1>Unknown client_id</h1>", status_code=400)
        uri = params.get("redirect_uri", "")
        if uri not in app["redirect_uris"]:
            return HTMLResponse("<h1>redirect_uri does not match the app's registered URIs</h1>", 400)
        if params.get("response_type") != "code":
            return _redirect(uri, {"error": "unsupported_response_type", "state": params.get("state", "")})
        return app, uri

    def _approve(app: Record, uri: str, params: dict[str, str]) -> RedirectResponse:
        code = {
            "id": state.next_id("oauth_codes"),
            "code": secrets.token_urlsafe(24),
            "client_id": app["client_id"],
            "redirect_uri": uri,
            "user_id": int(state.settings.get("sandbox_user_id", 1)),
            "expires_at": iso(state.clock.now() + timedelta(seconds=CODE_SECONDS)),
        }
        state.put("oauth_codes", code)
        out = {"code": code["code"]}
        if "state" in params:
            out["state"] = params["state"]
        return _redirect(uri, out)

    @r.get("/oauth/authorize", include_in_schema=False)
    def authorize(request: Request) -> Response:
        params = dict(request.query_params)
        checked = _check(params)
        if isinstance(checked, Response):
            return checked
        app, uri = checked
        if params.get("sandbox_auto_approve") in ("true", "1"):
            return _approve(app, uri, params)
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in params.items()
        )
        page = (
            "<!doctype html><title>Clio sandbox: authorize</title>"
            f"<h1>{html.escape(app['name'])} would like to access your Clio sandbox account</h1>"
            f'<form method="post" action="/oauth/authorize">{hidden}'
            '<button name="decision" value="approve">Allow access</button> '
            '<button name="decision" value="decline">Deny</button></form>'
        )
        return HTMLResponse(page)

    @r.post("/oauth/authorize", include_in_schema=False)
    async def decide(request: Request) -> Response:
        params = {k: str(v) for k, v in (await request.form()).items()}
        checked = _check(params)
        if isinstance(checked, Response):
            return checked
        app, uri = checked
        if params.get("decision") != "approve":
            return _redirect(uri, {"error": "access_denied", "state": params.get("state", "")})
        return _approve(app, uri, params)

    @r.post("/oauth/token", include_in_schema=False)
    async def token(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        app = find_app(state, form.get("client_id", ""))
        if app is None or not secrets.compare_digest(app["client_secret"], form.get("client_secret", "")):
            return _oauth_error(401, "invalid_client", "Unknown client_id or wrong client_secret.")
        grant_type = form.get("grant_type")
        with state.lock:
            if grant_type == "authorization_code":
                code = next((c for c in state.all("oauth_codes") if c["code"] == form.get("code")), None)
                if code is None or code["client_id"] != app["client_id"]:
                    return _oauth_error(
                        400, "invalid_grant", "The authorization code is invalid or was used."
                    )
                state.remove("oauth_codes", code["id"])  # single use
                if datetime.fromisoformat(code["expires_at"]) <= state.clock.now():
                    return _oauth_error(400, "invalid_grant", "The authorization code has expired.")
                if code["redirect_uri"] != form.get("redirect_uri"):
                    return _oauth_error(
                        400, "invalid_grant", "redirect_uri does not match the authorization."
                    )
                return JSONResponse(issue_token(state, grant_for(state, app, code["user_id"])))
            if grant_type == "refresh_token":
                grant = next(
                    (
                        g
                        for g in state.all("oauth_grants")
                        if g["refresh_token"] == form.get("refresh_token")
                        and g["client_id"] == app["client_id"]
                    ),
                    None,
                )
                if grant is None or grant["revoked"]:
                    return _oauth_error(400, "invalid_grant", "The refresh token is invalid or was revoked.")
                return JSONResponse(issue_token(state, grant))
        return _oauth_error(
            400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token."
        )

    @r.post("/oauth/deauthorize", include_in_schema=False)
    async def deauthorize(request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        form = {k: str(v) for k, v in (await request.form()).items()}
        raw = form.get("token") or (auth[7:] if auth.lower().startswith("bearer ") else "")
        with state.lock:
            token = authenticate(state, raw)
            if token is None:
                return _oauth_error(401, "invalid_token", "The token is invalid, expired or already revoked.")
            grant = state.get("oauth_grants", token["grant_id"])
            if grant is not None:
                grant["revoked"] = True
                state.put("oauth_grants", grant)
        return JSONResponse({})

    return r

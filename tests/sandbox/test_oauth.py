"""OAuth 2.0 as Clio runs it: authorization code -> token -> refresh; revocation; expiry; bad clients."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx

from tests.sandbox.conftest import Sandbox, clio_client, ok

REDIRECT = "http://127.0.0.1:9/callback"


def register(sandbox: Sandbox) -> dict[str, str]:
    with sandbox.admin() as admin:
        app = ok(admin.post("/apps", json={"name": "Casebridge", "redirect_uris": [REDIRECT]}), 201)
    return {"client_id": app["client_id"], "client_secret": app["client_secret"]}


def authorize(sandbox: Sandbox, client_id: str, **extra: str) -> httpx.Response:
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "state": "xyz",
        **extra,
    }
    return httpx.get(f"{sandbox.url}/oauth/authorize", params=params, follow_redirects=False)


def code_from(response: httpx.Response) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    return query["code"][0]


def test_authorization_code_then_token_then_refresh(sandbox: Sandbox) -> None:
    app = register(sandbox)
    code = code_from(authorize(sandbox, app["client_id"], sandbox_auto_approve="true"))
    token = ok(
        httpx.post(
            f"{sandbox.url}/oauth/token",
            data={**app, "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        )
    )
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 2592000
    with clio_client(sandbox, token["access_token"]) as clio:
        me = ok(clio.get("/users/who_am_i.json", params={"fields": "id,name,account{name}"}))["data"]
    assert me["account"] == {"name": "Sandbox Law LLP"}
    # The code is single use.
    again = httpx.post(
        f"{sandbox.url}/oauth/token",
        data={**app, "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # Refresh tokens are reusable and not rotated.
    for _ in range(2):
        refreshed = ok(
            httpx.post(
                f"{sandbox.url}/oauth/token",
                data={**app, "grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
            )
        )
        assert refreshed["refresh_token"] == token["refresh_token"]
        assert refreshed["access_token"] != token["access_token"]


def test_the_consent_page_approves_and_declines(sandbox: Sandbox) -> None:
    app = register(sandbox)
    page = authorize(sandbox, app["client_id"])
    assert page.status_code == 200
    assert "Casebridge would like to access" in page.text
    form = {"client_id": app["client_id"], "response_type": "code", "redirect_uri": REDIRECT, "state": "xyz"}
    approved = httpx.post(f"{sandbox.url}/oauth/authorize", data={**form, "decision": "approve"})
    assert code_from(approved)
    declined = httpx.post(f"{sandbox.url}/oauth/authorize", data={**form, "decision": "decline"})
    assert parse_qs(urlsplit(declined.headers["location"]).query)["error"] == ["access_denied"]


def test_bad_clients_and_redirects_are_refused(sandbox: Sandbox) -> None:
    app = register(sandbox)
    assert authorize(sandbox, "nobody", sandbox_auto_approve="true").status_code == 400
    wrong_uri = httpx.get(
        f"{sandbox.url}/oauth/authorize",
        params={
            "client_id": app["client_id"],
            "response_type": "code",
            "redirect_uri": "http://evil.example/cb",
        },
    )
    assert wrong_uri.status_code == 400
    code = code_from(authorize(sandbox, app["client_id"], sandbox_auto_approve="true"))
    bad_secret = httpx.post(
        f"{sandbox.url}/oauth/token",
        data={
            **app,
            "client_secret": "wrong",
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
        },
    )
    assert bad_secret.status_code == 401
    assert bad_secret.json()["error"] == "invalid_client"


def test_deauthorize_revokes_access_and_refresh(sandbox: Sandbox) -> None:
    app = register(sandbox)
    code = code_from(authorize(sandbox, app["client_id"], sandbox_auto_approve="true"))
    token = ok(
        httpx.post(
            f"{sandbox.url}/oauth/token",
            data={**app, "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        )
    )
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    revoked = httpx.post(
        f"{sandbox.url}/oauth/deauthorize", headers=bearer, data={"token": token["access_token"]}
    )
    assert revoked.status_code == 200
    with clio_client(sandbox, token["access_token"]) as clio:
        denied = clio.get("/users/who_am_i")
    assert denied.status_code == 401
    assert denied.json()["error"]["type"] == "InvalidTokenError"
    refresh = httpx.post(
        f"{sandbox.url}/oauth/token",
        data={**app, "grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert refresh.status_code == 400


def test_access_tokens_expire_after_thirty_days(sandbox: Sandbox) -> None:
    token = sandbox.token()
    with clio_client(sandbox, token) as clio, sandbox.admin() as admin:
        ok(clio.get("/users/who_am_i"))
        ok(admin.post("/clock", json={"advance_seconds": 30 * 24 * 3600 - 60}))
        ok(clio.get("/users/who_am_i"))
        ok(admin.post("/clock", json={"advance_seconds": 120}))
        assert clio.get("/users/who_am_i").status_code == 401

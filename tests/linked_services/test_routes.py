"""Linked services through the API: secrets encrypted at rest and never shown, validation, the
connection test, and protection of the workflows that use a service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from casebridge.db.session import unit_of_work
from casebridge.kit.context import Role
from casebridge.kit.crypto import SecretBox
from casebridge.models import LinkedService
from tests.conftest import Backend, LiveServer, MakeClient
from tests.workflows.finance import FinanceSystem, serving

KEY = "sk-live-7f6e5d4c3b2a19"
NEW_KEY = "sk-live-rotated-0011223344"


@pytest.fixture
def finance(live_server: LiveServer) -> Iterator[FinanceSystem]:
    with serving(FinanceSystem(api_key=KEY)) as system:
        yield system


def create(api: httpx.Client, **overrides: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "name": "finance",
        "description": "The firm's ledger",
        "base_url": "https://finance.example.com/api",
        "auth": {"type": "api_key", "header_name": "X-API-Key"},
        "secret": KEY,
    }
    body.update(overrides)
    return api.post("/api/v1/linked-services", json=body)


def stored(backend: Backend, name: str = "finance") -> LinkedService:
    with unit_of_work(backend.db.reader) as session:
        row = session.scalar(select(LinkedService).where(LinkedService.name == name))
        assert row is not None
        return row


def test_secret_is_encrypted_at_rest_and_never_returned(api: httpx.Client, clean: Backend) -> None:
    r = create(api)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["has_secret"] is True
    assert "secret" not in out
    assert out["auth"] == {"type": "api_key", "header_name": "X-API-Key"}
    assert r.headers["location"].endswith("/api/v1/linked-services/finance")
    assert KEY not in r.text

    row = stored(clean)
    assert row.secret_encrypted is not None
    assert KEY not in row.secret_encrypted
    assert SecretBox(clean.settings.resolved_secret_key).decrypt(row.secret_encrypted) == KEY
    assert SecretBox("another key entirely").encrypt(KEY) != row.secret_encrypted

    assert KEY not in api.get("/api/v1/linked-services").text
    assert KEY not in api.get("/api/v1/linked-services/finance").text

    # Rotate the key: the event says it was replaced, without either value.
    patched = api.patch(
        "/api/v1/linked-services/finance", json={"secret": NEW_KEY}, headers={"If-Match": out["etag"]}
    )
    assert patched.status_code == 200, patched.text
    assert (
        SecretBox(clean.settings.resolved_secret_key).decrypt(stored(clean).secret_encrypted or "") == NEW_KEY
    )
    events = api.get("/api/v1/events", params={"type": "linked_service.*"}).json()["data"]
    assert [e["type"] for e in events] == ["linked_service.created", "linked_service.updated"]
    assert events[1]["changes"] == {"secret": {"old": "[redacted]", "new": "[redacted]"}}
    text = json.dumps(events)
    assert KEY not in text
    assert NEW_KEY not in text
    assert events[0]["changes"]["has_secret"] == {"old": None, "new": True}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"secret": None}, "body.secret", "api_key auth needs a secret: send the API key as 'secret'"),
        (
            {"base_url": "ftp://x.example"},
            "body.base_url",
            "'ftp://x.example' is not an absolute http(s) URL",
        ),
        (
            {"base_url": "https://user:pw@x.example"},
            "body.base_url",
            "put credentials in the auth settings and the secret, not in the URL",
        ),
        ({"name": "Finance System"}, "body.name", "String should match pattern '^[a-z0-9][a-z0-9_-]{0,99}$'"),
        ({"auth": {"type": "none"}}, "body.secret", "a service with auth type none takes no secret"),
        ({"auth": {"type": "basic"}}, "body.auth.username", "Field required"),
        (
            {"auth": {"type": "oauth2_client_credentials", "token_url": "token", "client_id": "c"}},
            "body.auth.token_url",
            "'token' is not an absolute http(s) URL",
        ),
        ({"timeout_seconds": 0}, "body.timeout_seconds", "Input should be greater than 0"),
        (
            {"auth": {"type": "magic"}},
            "body.auth.type",
            "auth.type must be one of: none, api_key, basic, oauth2_client_credentials",
        ),
    ],
)
def test_invalid_services_are_refused(
    api: httpx.Client, overrides: dict[str, Any], field: str, message: str
) -> None:
    r = create(api, **overrides)
    assert r.status_code == 422, r.text
    assert [(e["field"], e["message"]) for e in r.json()["errors"]] == [(field, message)]


def test_names_are_unique_and_auth_changes_need_their_secret(api: httpx.Client) -> None:
    assert create(api).status_code == 201
    assert create(api).status_code == 409
    r = api.patch(
        "/api/v1/linked-services/finance",
        json={"auth": {"type": "oauth2_client_credentials", "token_url": "/oauth/token", "client_id": "cb"}},
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["message"] == (
        "changing auth from api_key to oauth2_client_credentials needs the new secret in 'secret'"
    )
    r = api.patch(
        "/api/v1/linked-services/finance",
        json={
            "auth": {"type": "oauth2_client_credentials", "token_url": "/oauth/token", "client_id": "cb"},
            "secret": "client-secret",
        },
    )
    assert r.status_code == 200
    assert r.json()["auth"] == {
        "type": "oauth2_client_credentials",
        "token_url": "/oauth/token",
        "client_id": "cb",
        "client_auth": "client_secret_post",
    }
    r = api.patch("/api/v1/linked-services/finance", json={"auth": {"type": "none"}, "secret": None})
    assert (r.status_code, r.json()["has_secret"]) == (200, False)
    assert api.get("/api/v1/linked-services/nope").status_code == 404


def test_connection_test_uses_the_auth_and_redacts(api: httpx.Client, finance: FinanceSystem) -> None:
    assert create(api, base_url=finance.base_url).status_code == 201
    good = api.post("/api/v1/linked-services/finance/test", json={"path": "/health"})
    assert good.json() | {"elapsed_ms": 0} == {"ok": True, "status": 200, "elapsed_ms": 0, "error": None}
    assert finance.received == []  # GET /health is not a payment
    api.patch("/api/v1/linked-services/finance", json={"secret": "wrong-key-123"})
    bad = api.post("/api/v1/linked-services/finance/test", json={"path": "/health"}).json()
    assert (bad["ok"], bad["status"], bad["error"]) == (False, 401, "GET /health answered 401")
    api.patch("/api/v1/linked-services/finance", json={"base_url": "http://127.0.0.1:9/api"})
    down = api.post("/api/v1/linked-services/finance/test").json()
    assert (down["ok"], down["status"]) == (False, None)
    assert down["error"].startswith("GET /: no answer from 'finance': ConnectError")
    assert "wrong-key-123" not in json.dumps(down)


def test_a_service_in_use_cannot_be_renamed_or_deleted(api: httpx.Client) -> None:
    svc = create(api).json()
    wf = {
        "name": "pay",
        "trigger": {"event": "activity.approved"},
        "steps": [{"action": "http", "service": "finance", "path": "/payments"}],
    }
    made = api.post("/api/v1/workflows", json=wf)
    assert made.status_code == 201, made.text
    r = api.delete("/api/v1/linked-services/finance")
    assert r.status_code == 409
    assert (
        r.json()["detail"]
        == "Linked service 'finance' is used by the workflows pay; change or delete them first."
    )
    assert api.patch("/api/v1/linked-services/finance", json={"name": "ledger"}).status_code == 409
    assert api.delete(f"/api/v1/workflows/{made.json()['id']}").status_code == 204
    assert api.delete("/api/v1/linked-services/finance", headers={"If-Match": '"stale"'}).status_code == 412
    assert api.delete("/api/v1/linked-services/finance", headers={"If-Match": svc["etag"]}).status_code == 204
    assert api.get("/api/v1/linked-services/finance").status_code == 404


def test_roles(api: httpx.Client, make_client: MakeClient) -> None:
    assert create(api).status_code == 201
    integration = make_client(Role.INTEGRATION)
    assert integration.get("/api/v1/linked-services/finance").json()["has_secret"] is True
    assert create(integration, name="other").status_code == 403
    assert integration.post("/api/v1/linked-services/finance/test").status_code == 403
    assert make_client(Role.STAFF).get("/api/v1/linked-services").status_code == 403
    assert make_client(Role.READ_ONLY).get("/api/v1/linked-services/finance").status_code == 403


def test_unknown_ids_in_the_path_are_404(api: httpx.Client) -> None:
    assert api.patch(f"/api/v1/linked-services/{uuid.uuid4()}", json={}).status_code == 404

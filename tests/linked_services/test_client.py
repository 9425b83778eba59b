"""The linked-service client over a mock transport: each auth mode, OAuth2 token caching and refresh,
relative paths only, and redaction."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from casebridge.linked_services.client import (
    REDACTED,
    LinkedServiceClient,
    LinkedServiceError,
    ServiceConfig,
    clear_token_cache,
    redact,
)


class Recorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.token_calls = 0
        self.valid_tokens: set[str] = set()
        self.token_status = 200

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/oauth/token":
            self.token_calls += 1
            if self.token_status != 200:
                return httpx.Response(self.token_status, text=f"bad client {request.content.decode()}")
            token = f"token-{self.token_calls}-abcdef"
            self.valid_tokens.add(token)
            return httpx.Response(200, json={"access_token": token, "expires_in": 3600})
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer token-") and auth.removeprefix("Bearer ") not in self.valid_tokens:
            return httpx.Response(401, json={"error": "expired"})
        return httpx.Response(200, json={"ok": True, "path": request.url.path})


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_token_cache()
    yield
    clear_token_cache()


def config(auth_type: str, auth: dict[str, Any], secret: str | None = "s3cret-value") -> ServiceConfig:
    return ServiceConfig(
        id=uuid.uuid4(),
        name="svc",
        base_url="https://svc.example/api/v2",
        auth_type=auth_type,
        auth_config=auth,
        secret=secret,
        timeout=5.0,
    )


def client(cfg: ServiceConfig, rec: Recorder) -> LinkedServiceClient:
    return LinkedServiceClient(cfg, transport=httpx.MockTransport(rec))


def test_api_key_defaults_to_a_bearer_authorization_header() -> None:
    rec = Recorder()
    response = client(config("api_key", {}), rec).request("GET", "/things/1")
    assert response.status == 200
    assert response.body == {"ok": True, "path": "/api/v2/things/1"}
    assert rec.requests[0].headers["authorization"] == "Bearer s3cret-value"


def test_api_key_in_a_named_header_with_no_prefix_and_basic_auth() -> None:
    rec = Recorder()
    c = client(config("api_key", {"header_name": "X-API-Key"}), rec)
    c.request("POST", "payments", json={"a": 1})
    assert rec.requests[0].headers["x-api-key"] == "s3cret-value"
    assert rec.requests[0].url == "https://svc.example/api/v2/payments"
    assert c.last_request_headers["X-API-Key"] == REDACTED
    client(config("basic", {"username": "casebridge"}), rec).request("GET", "/")
    expected = base64.b64encode(b"casebridge:s3cret-value").decode()
    assert rec.requests[1].headers["authorization"] == f"Basic {expected}"


def test_oauth2_token_is_cached_across_clients_and_refreshed_once_on_401() -> None:
    rec = Recorder()
    cfg = config(
        "oauth2_client_credentials", {"token_url": "/oauth/token", "client_id": "cb", "scope": "payments"}
    )
    for _ in range(3):
        assert client(cfg, rec).request("GET", "/x").status == 200
    assert rec.token_calls == 1
    form = parse_qs(rec.requests[0].content.decode())
    assert form == {
        "grant_type": ["client_credentials"],
        "scope": ["payments"],
        "client_id": ["cb"],
        "client_secret": ["s3cret-value"],
    }
    rec.valid_tokens.clear()  # the service forgets its tokens
    assert client(cfg, rec).request("GET", "/x").status == 200
    assert rec.token_calls == 2


def test_oauth2_client_secret_basic_and_token_errors_are_redacted() -> None:
    rec = Recorder()
    cfg = config(
        "oauth2_client_credentials",
        {
            "token_url": "https://idp.example/oauth/token",
            "client_id": "cb",
            "client_auth": "client_secret_basic",
        },
    )
    client(cfg, rec).request("GET", "/x")
    token_request = rec.requests[0]
    assert token_request.url.host == "idp.example"
    assert token_request.headers["authorization"] == "Basic " + base64.b64encode(b"cb:s3cret-value").decode()
    assert "client_secret" not in token_request.content.decode()

    clear_token_cache()
    rec.token_status = 401
    post = config("oauth2_client_credentials", {"token_url": "/oauth/token", "client_id": "cb"})
    with pytest.raises(LinkedServiceError) as caught:
        client(post, rec).request("GET", "/x")
    assert caught.value.retryable is False
    assert caught.value.message.startswith("token endpoint /oauth/token answered 401: bad client")
    assert "s3cret-value" not in caught.value.message
    assert REDACTED in caught.value.message
    rec.token_status = 503
    with pytest.raises(LinkedServiceError) as caught:
        client(post, rec).request("GET", "/x")
    assert caught.value.retryable is True


def test_paths_cannot_leave_the_base_url_and_a_missing_secret_is_explained() -> None:
    rec = Recorder()
    c = client(config("api_key", {}), rec)
    for path in ("https://elsewhere.example/x", "//elsewhere.example/x"):
        with pytest.raises(LinkedServiceError, match="must be relative"):
            c.request("GET", path)
    assert rec.requests == []
    with pytest.raises(LinkedServiceError, match="uses api_key auth but has no secret stored"):
        client(config("api_key", {}, secret=None), rec).request("GET", "/")


def test_redact_replaces_secrets_and_auth_headers_anywhere() -> None:
    value = {
        "headers": {"Authorization": "Bearer abc", "X-Custom-Key": "k", "Accept": "json"},
        "body": ["echo s3cret-value back", {"nested": "s3cret-value"}],
        "n": 1,
    }
    assert redact(value, ["s3cret-value"], ["x-custom-key"]) == {
        "headers": {"Authorization": REDACTED, "X-Custom-Key": REDACTED, "Accept": "json"},
        "body": [f"echo {REDACTED} back", {"nested": REDACTED}],
        "n": 1,
    }

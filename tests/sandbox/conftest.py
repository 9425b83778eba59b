"""The Clio sandbox as a real server on loopback, and clients that check every response against the
committed spec (tests/sandbox/spec_validation.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from casebridge.sandbox.clio import SandboxConfig, SandboxState, create_app
from tests.conftest import _serve
from tests.sandbox.spec_validation import validate


@dataclass
class Sandbox:
    url: str
    state: SandboxState
    app: Any

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/_sandbox", timeout=30)

    def token(self) -> str:
        with self.admin() as admin:
            response = admin.post("/tokens", json={})
            response.raise_for_status()
            return str(response.json()["access_token"])


def _check_spec(response: httpx.Response) -> None:
    if response.request.url.path.startswith("/api/v4"):
        response.read()
        validate(response)


def clio_client(sandbox: Sandbox, token: str | None = None, *, check: bool = True) -> httpx.Client:
    """A client of the Clio surface whose every response is validated against the spec."""
    headers = {"Authorization": f"Bearer {token or sandbox.token()}"}
    hooks = {"response": [_check_spec]} if check else {}
    return httpx.Client(base_url=f"{sandbox.url}/api/v4", headers=headers, timeout=30, event_hooks=hooks)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    state = SandboxState(
        SandboxConfig(rate_limit=100_000, allow_http_webhooks=True, webhook_time_scale=0.001)
    )
    app = create_app(state)
    server, thread, url = _serve(app, date_header=False)
    yield Sandbox(url, state, app)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Sandbox:
    """The shared sandbox, reset: fresh state, default settings, no faults."""
    with sandbox_server.admin() as admin:
        admin.post("/reset").raise_for_status()
    return sandbox_server


@pytest.fixture
def clio(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with clio_client(sandbox) as client:
        yield client


MakeClio = Callable[..., httpx.Client]


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None

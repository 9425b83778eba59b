"""Fixtures for workflow tests: a job worker (the live server's embedded one is off), the loopback
finance system, and helpers over the real API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from casebridge.jobs.builtin import build_registry
from casebridge.jobs.worker import Worker
from casebridge.kit.context import Role
from casebridge.linked_services.client import clear_token_cache
from tests.conftest import Backend, LiveServer, MakeClient
from tests.factories import create_matter
from tests.workflows.finance import FinanceSystem, serving

API_KEY = "fin-key-9f8e7d6c5b4a"
CLIENT_SECRET = "client-secret-0a1b2c3d4e5f"


@pytest.fixture
def worker(live_server: LiveServer, clean: Backend) -> Iterator[Worker]:
    clear_token_cache()
    w = Worker(
        clean.db,
        build_registry(),
        settings=clean.settings,
        concurrency=4,
        poll_interval=0.05,
        lease_seconds=5,
    )
    w.start()
    yield w
    w.shutdown_grace = 5
    w.stop()


@pytest.fixture
def integration_token(make_client: MakeClient) -> str:
    client = make_client(Role.INTEGRATION, name="finance-system")
    return str(client.headers["Authorization"]).removeprefix("Bearer ")


@pytest.fixture
def finance(live_server: LiveServer, integration_token: str) -> Iterator[FinanceSystem]:
    system = FinanceSystem(
        api_key=API_KEY, casebridge_url=live_server.url, casebridge_token=integration_token
    )
    with serving(system):
        yield system


@pytest.fixture
def oauth_finance(live_server: LiveServer, integration_token: str) -> Iterator[FinanceSystem]:
    system = FinanceSystem(
        client_id="casebridge",
        client_secret=CLIENT_SECRET,
        casebridge_url=live_server.url,
        casebridge_token=integration_token,
    )
    with serving(system):
        yield system


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def add_api_key_service(api: httpx.Client, finance: FinanceSystem, name: str = "finance") -> dict[str, Any]:
    body = {
        "name": name,
        "base_url": finance.base_url,
        "auth": {"type": "api_key", "header_name": "X-API-Key"},
        "secret": API_KEY,
    }
    return dict(ok(api.post("/api/v1/linked-services", json=body), 201))


def add_oauth_service(api: httpx.Client, finance: FinanceSystem, name: str = "finance") -> dict[str, Any]:
    body = {
        "name": name,
        "base_url": finance.base_url,
        "auth": {"type": "oauth2_client_credentials", "token_url": "/oauth/token", "client_id": "casebridge"},
        "secret": CLIENT_SECRET,
    }
    return dict(ok(api.post("/api/v1/linked-services", json=body), 201))


def add_workflow(api: httpx.Client, definition: dict[str, Any]) -> dict[str, Any]:
    return dict(ok(api.post("/api/v1/workflows", json=definition), 201))


def expense(
    api: httpx.Client, matter_id: str, amount: str = "250.00", *, approve: bool = True
) -> dict[str, Any]:
    body = {
        "kind": "expense",
        "matter_id": matter_id,
        "date": "2026-11-20",
        "amount": {"amount": amount, "currency": "GBP"},
        "category": "search fees",
        "description": "Local authority search",
    }
    made = ok(api.post("/api/v1/activities", json=body), 201)
    ok(api.post(f"/api/v1/activities/{made['id']}/submit"))
    if approve:
        return dict(ok(api.post(f"/api/v1/activities/{made['id']}/approve")))
    return dict(made)


def matter(api: httpx.Client) -> dict[str, Any]:
    return create_matter(api)


def wait_for(predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def instances(api: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    params = {k: v for k, v in filters.items() if v is not None}
    return list(ok(api.get("/api/v1/workflows/instances", params={**params, "limit": 200}))["data"])


def settled(api: httpx.Client, count: int, **filters: Any) -> list[dict[str, Any]]:
    """Wait until ``count`` instances match the filters and none of them is running or waiting."""

    def check() -> list[dict[str, Any]] | None:
        found = instances(api, **filters)
        if len(found) >= count and all(i["state"] not in ("running", "waiting") for i in found):
            return found
        return None

    return list(wait_for(check, what=f"{count} settled instances {filters}"))


def instance(api: httpx.Client, instance_id: str) -> dict[str, Any]:
    return dict(ok(api.get(f"/api/v1/workflows/instances/{instance_id}")))


def event_id(api: httpx.Client, type_: str, entity_id: str) -> int:
    events = ok(api.get("/api/v1/events", params={"type": type_, "entity_id": entity_id}))["data"]
    assert events, f"no {type_} event for {entity_id}"
    return int(events[-1]["id"])


def notes(api: httpx.Client, matter_id: str) -> list[str]:
    return [n["body"] for n in ok(api.get(f"/api/v1/matters/{matter_id}/notes"))["data"]]

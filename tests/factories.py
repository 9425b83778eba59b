"""Small create_<thing>(client, **overrides) helpers over the real API."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

_seq = itertools.count(1)


def _ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def create_contact(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    body: dict[str, Any] = {
        "kind": "person",
        "first_name": "Ada",
        "last_name": f"Client{n}",
        "emails": [{"address": f"ada{n}@example.com"}],
        "party_types": ["client"],
    }
    body.update(overrides)
    return _ok(client.post("/api/v1/contacts", json=body))


def create_user(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    n = next(_seq)
    body: dict[str, Any] = {
        "name": f"Fee Earner {n}",
        "email": f"earner{n}@firm.example",
        "initials": f"FE{n}",
    }
    body.update(overrides)
    return _ok(client.post("/api/v1/users", json=body))


def create_matter(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    """A matter; makes a client contact first unless ``client_id`` is given."""
    body: dict[str, Any] = {"title": f"Purchase of {next(_seq)} High Street"}
    if "client_id" not in overrides:
        body["client_id"] = create_contact(client)["id"]
    body.update(overrides)
    return _ok(client.post("/api/v1/matters", json=body))

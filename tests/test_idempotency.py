"""Idempotency-Key on POST: replay, reuse with another request, per-token keys, failures, races, expiry."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.kit.context import Role
from casebridge.models import Contact, IdempotencyKey
from tests.conftest import Backend, MakeClient

PROBLEM_JSON = "application/problem+json"
CONTACTS = "/api/v1/contacts"


def _body(last_name: str = "Lovelace", **extra: Any) -> dict[str, Any]:
    return {"kind": "person", "first_name": "Ada", "last_name": last_name, **extra}


def _key() -> str:
    return f"key-{uuid.uuid4()}"


def _count_contacts(backend: Backend) -> int:
    with unit_of_work(backend.db.reader) as session:
        return int(session.scalar(select(func.count()).select_from(Contact)) or 0)


def _count_keys(backend: Backend) -> int:
    with unit_of_work(backend.db.reader) as session:
        return int(session.scalar(select(func.count()).select_from(IdempotencyKey)) or 0)


def _event_types(client: httpx.Client, **params: Any) -> list[str]:
    r = client.get("/api/v1/events", params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    return [e["type"] for e in r.json()["data"]]


def test_same_key_same_body_replays_the_first_response(api: httpx.Client, clean: Backend) -> None:
    key = _key()
    first = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    again = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.json()["id"] == first.json()["id"]
    for header in ("content-type", "etag", "location"):
        assert again.headers[header] == first.headers[header]

    assert _count_contacts(clean) == 1
    assert _event_types(api) == ["contact.created"]


def test_replay_is_byte_for_byte_even_after_the_record_changed(api: httpx.Client) -> None:
    """A replay is the stored response of the original request, not a fresh read."""
    key = _key()
    first = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    api.patch(f"{CONTACTS}/{first.json()['id']}", json={"notes": "changed later"})
    again = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.content == first.content


def test_same_key_different_body_is_422_key_reused(api: httpx.Client, clean: Backend) -> None:
    key = _key()
    assert api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key}).status_code == 201
    other = api.post(CONTACTS, json=_body("Byron"), headers={"Idempotency-Key": key})
    assert other.status_code == 422
    assert other.headers["content-type"].startswith(PROBLEM_JSON)
    assert other.json()["type"] == "/problems/idempotency-key-reused"
    # The same key on another endpoint is another request too.
    users = api.post(
        "/api/v1/users", json={"name": "N", "email": "n@firm.example"}, headers={"Idempotency-Key": key}
    )
    assert users.status_code == 422
    assert users.json()["type"] == "/problems/idempotency-key-reused"
    assert _count_contacts(clean) == 1
    assert _event_types(api) == ["contact.created"]


def test_body_bytes_matter_not_just_meaning(api: httpx.Client) -> None:
    """The fingerprint is over the body as sent: the same JSON re-serialised differently is another request."""
    key = _key()
    compact = b'{"kind":"person","last_name":"Key"}'
    spaced = b'{"kind": "person", "last_name": "Key"}'
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    assert api.post(CONTACTS, content=compact, headers=headers).status_code == 201
    assert api.post(CONTACTS, content=compact, headers=headers).headers["idempotent-replayed"] == "true"
    assert api.post(CONTACTS, content=spaced, headers=headers).status_code == 422


def test_keys_are_per_token(make_client: MakeClient, clean: Backend) -> None:
    alice = make_client(Role.STAFF, name="alice")
    bob = make_client(Role.STAFF, name="bob")
    key = _key()
    a = alice.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    b = bob.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]
    assert _count_contacts(clean) == 2
    # Each token still replays its own.
    again = bob.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == b.json()["id"]


def test_failed_requests_are_not_stored(api: httpx.Client, clean: Backend) -> None:
    """Only a 2xx is kept: a retry of a failed request with the same key runs again (Stripe's rule)."""
    key = _key()
    # Schema validation failure.
    bad = api.post(CONTACTS, json={"kind": "alien"}, headers={"Idempotency-Key": key})
    assert bad.status_code == 422
    assert bad.json()["type"] == "/problems/validation"
    # Business-rule validation failure (a person needs a name), same key, another body.
    nameless = api.post(CONTACTS, json={"kind": "person"}, headers={"Idempotency-Key": key})
    assert nameless.status_code == 422
    assert nameless.json()["type"] == "/problems/validation"
    assert _count_keys(clean) == 0

    # The corrected request with the same key succeeds and is then the one stored.
    fixed = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers
    replay = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == fixed.json()["id"]
    assert _count_contacts(clean) == 1
    assert _count_keys(clean) == 1
    assert _event_types(api) == ["contact.created"]


def test_forbidden_request_with_a_key_is_not_stored(make_client: MakeClient, clean: Backend) -> None:
    reader = make_client(Role.READ_ONLY)
    key = _key()
    r = reader.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert r.status_code == 403
    assert _count_keys(clean) == 0


def test_key_length_is_checked(api: httpx.Client, clean: Backend) -> None:
    r = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": "k" * 256})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith(PROBLEM_JSON)
    assert _count_contacts(clean) == 0
    assert api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": "k" * 255}).status_code == 201


def test_key_is_ignored_on_patch(api: httpx.Client) -> None:
    """Idempotency-Key applies to POST; PATCH is idempotent by If-Match instead."""
    contact = api.post(CONTACTS, json=_body()).json()
    key = _key()
    one = api.patch(f"{CONTACTS}/{contact['id']}", json={"notes": "a"}, headers={"Idempotency-Key": key})
    two = api.patch(f"{CONTACTS}/{contact['id']}", json={"notes": "b"}, headers={"Idempotency-Key": key})
    assert one.status_code == two.status_code == 200
    assert "idempotent-replayed" not in two.headers
    assert two.json()["notes"] == "b"


def _post_concurrently(client: httpx.Client, body: dict[str, Any], key: str, n: int) -> list[Any]:
    """``n`` threads POST the same body with the same key, released together by a barrier."""
    barrier = threading.Barrier(n)
    results: list[httpx.Response | BaseException | None] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = client.post(CONTACTS, json=body, headers={"Idempotency-Key": key})
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_concurrent_requests_with_one_key_create_one_contact(make_client: MakeClient, clean: Backend) -> None:
    api = make_client(Role.STAFF)
    threads_n = 5
    for _round in range(3):
        key = _key()
        results = _post_concurrently(api, _body(f"Racer {key[-6:]}"), key, threads_n)
        responses = [r for r in results if isinstance(r, httpx.Response)]
        assert len(responses) == threads_n, results

        created = [r for r in responses if r.status_code == 201]
        in_progress = [r for r in responses if r.status_code == 409]
        assert len(created) + len(in_progress) == threads_n, [(r.status_code, r.text) for r in responses]
        assert created, "at least one request must succeed"
        assert len({r.content for r in created}) == 1, "every 201 must be the same response"
        assert sum("idempotent-replayed" not in r.headers for r in created) <= 1
        for r in in_progress:
            assert r.headers["content-type"].startswith(PROBLEM_JSON)

    assert _count_contacts(clean) == 3
    with unit_of_work(clean.db.reader) as session:
        names = list(session.scalars(select(Contact.last_name)))
    assert len(names) == len(set(names)) == 3
    assert _event_types(api) == ["contact.created"] * 3


def test_an_expired_key_creates_anew(api: httpx.Client, clean: Backend) -> None:
    key = _key()
    first = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert first.status_code == 201
    with unit_of_work(clean.db.writer) as session:
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    second = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert _count_contacts(clean) == 2
    # The expired row was replaced: the key now replays the second response.
    assert _count_keys(clean) == 1
    third = api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key})
    assert third.headers["idempotent-replayed"] == "true"
    assert third.json()["id"] == second.json()["id"]


def test_stored_key_expires_after_the_configured_ttl(api: httpx.Client, clean: Backend) -> None:
    key = _key()
    before = utcnow()
    assert api.post(CONTACTS, json=_body(), headers={"Idempotency-Key": key}).status_code == 201
    with unit_of_work(clean.db.reader) as session:
        row = session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == key)).one()
    ttl = timedelta(hours=clean.settings.idempotency_ttl_hours)
    assert before + ttl <= row.expires_at <= utcnow() + ttl
    assert row.method == "POST"
    assert row.path == CONTACTS

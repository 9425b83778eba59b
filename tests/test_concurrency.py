"""ETag / If-Match between concurrent writers: one wins, the other gets 412; and conditional GETs."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from casebridge.kit.context import Role
from tests.conftest import MakeClient
from tests.factories import create_contact

PROBLEM_JSON = "application/problem+json"
ROUNDS = 10


def _events(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get("/api/v1/events", params={"after": after, "limit": 200, **params})
        assert page.status_code == 200, page.text
        body = page.json()
        out.extend(body["data"])
        if body["next_after"] is None:
            return out
        after = body["next_after"]


def _race(
    clients: list[httpx.Client], path: str, etag: str, bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    """Send one PATCH per client at the same moment (a barrier releases them together)."""
    barrier = threading.Barrier(len(clients))
    results: list[httpx.Response | BaseException | None] = [None] * len(clients)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = clients[i].patch(path, json=bodies[i], headers={"If-Match": etag})
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    out: list[httpx.Response] = []
    for r in results:
        if not isinstance(r, httpx.Response):
            raise AssertionError(f"a writer failed: {r!r}")
        out.append(r)
    return out


def test_two_concurrent_writers_one_wins_the_other_gets_412(make_client: MakeClient) -> None:
    api = make_client(Role.ADMIN)
    writers = [make_client(Role.STAFF, name="writer-a"), make_client(Role.STAFF, name="writer-b")]
    contact = create_contact(api)
    path = f"/api/v1/contacts/{contact['id']}"
    winners: list[int] = []

    for round_ in range(ROUNDS):
        current = api.get(path)
        assert current.status_code == 200
        etag = current.headers["etag"]
        bodies = [{"notes": f"round {round_} by writer {i}"} for i in range(2)]
        responses = _race(writers, path, etag, bodies)

        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 412], [(r.status_code, r.text) for r in responses]
        winner = next(i for i, r in enumerate(responses) if r.status_code == 200)
        winners.append(winner)
        loser = responses[1 - winner]
        assert loser.headers["content-type"].startswith(PROBLEM_JSON)
        problem = loser.json()
        assert problem["status"] == 412
        assert problem["type"] == "/problems/precondition-failed"

        stored = api.get(path)
        assert stored.json()["notes"] == bodies[winner]["notes"]
        assert stored.headers["etag"] == responses[winner].headers["etag"] != etag
        assert stored.json() == responses[winner].json()

    updates = _events(api, type="contact.updated", entity_id=contact["id"])
    assert len(updates) == ROUNDS
    # Each round's one event is the winner's write, in round order, by the winner's token.
    for round_, (event, winner_i) in enumerate(zip(updates, winners, strict=True)):
        assert event["changes"]["notes"]["new"] == f"round {round_} by writer {winner_i}"
        assert event["actor"]["name"] == f"writer-{'ab'[winner_i]}"


def test_sequential_if_match(api: httpx.Client) -> None:
    contact = create_contact(api)
    path = f"/api/v1/contacts/{contact['id']}"
    first_etag = contact["etag"]

    ok = api.patch(path, json={"notes": "one"}, headers={"If-Match": first_etag})
    assert ok.status_code == 200, ok.text
    second_etag = ok.headers["etag"]
    assert second_etag == ok.json()["etag"] != first_etag

    stale = api.patch(path, json={"notes": "two"}, headers={"If-Match": first_etag})
    assert stale.status_code == 412
    assert stale.headers["content-type"].startswith(PROBLEM_JSON)
    assert stale.json()["current_etag"] == second_etag
    assert api.get(path).json()["notes"] == "one"

    # A list of tags matches when any of them is current.
    listed = api.patch(path, json={"notes": "three"}, headers={"If-Match": f"{first_etag}, {second_etag}"})
    assert listed.status_code == 200, listed.text

    # Without If-Match the write is unconditional.
    blind = api.patch(path, json={"notes": "four"})
    assert blind.status_code == 200

    # Archive (DELETE) honours If-Match too.
    stale_delete = api.delete(path, headers={"If-Match": second_etag})
    assert stale_delete.status_code == 412
    assert api.get(path).json()["archived_at"] is None

    events = _events(api, entity_id=contact["id"])
    assert [e["type"] for e in events] == [
        "contact.created",
        "contact.updated",
        "contact.updated",
        "contact.updated",
    ]


def test_if_match_star_matches_any_current_representation(api: httpx.Client) -> None:
    contact = create_contact(api)
    path = f"/api/v1/contacts/{contact['id']}"
    r = api.patch(path, json={"notes": "star"}, headers={"If-Match": "*"})
    assert r.status_code == 200, r.text
    assert r.json()["notes"] == "star"
    # If-Match: * on a missing resource does not create it: 404.
    missing = api.patch(
        "/api/v1/contacts/00000000-0000-4000-8000-000000000000", json={}, headers={"If-Match": "*"}
    )
    assert missing.status_code == 404


def test_weak_etag_does_not_satisfy_if_match(api: httpx.Client) -> None:
    """If-Match uses the strong comparison (RFC 9110 13.1.1): W/"x" never matches."""
    contact = create_contact(api)
    r = api.patch(
        f"/api/v1/contacts/{contact['id']}",
        json={"notes": "weak"},
        headers={"If-Match": f"W/{contact['etag']}"},
    )
    assert r.status_code == 412


def test_if_none_match_gives_304_with_etag_and_empty_body(api: httpx.Client) -> None:
    contact = create_contact(api)
    path = f"/api/v1/contacts/{contact['id']}"
    etag = contact["etag"]

    same = api.get(path, headers={"If-None-Match": etag})
    assert same.status_code == 304
    assert same.headers["etag"] == etag
    assert same.content == b""

    weak = api.get(path, headers={"If-None-Match": f'"other", W/{etag}'})
    assert weak.status_code == 304  # If-None-Match uses the weak comparison

    star = api.get(path, headers={"If-None-Match": "*"})
    assert star.status_code == 304

    api.patch(path, json={"notes": "changed"})
    changed = api.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert changed.json()["notes"] == "changed"


@pytest.mark.parametrize("role", [Role.STAFF, Role.INTEGRATION])
def test_concurrent_archive_and_update(make_client: MakeClient, role: Role) -> None:
    """A PATCH and an archive racing on the same ETag: exactly one applies."""
    api = make_client(Role.ADMIN)
    a, b = make_client(role, name="a"), make_client(role, name="b")
    contact = create_contact(api)
    path = f"/api/v1/contacts/{contact['id']}"
    barrier = threading.Barrier(2)
    results: dict[str, httpx.Response] = {}

    def patch() -> None:
        barrier.wait(timeout=30)
        results["patch"] = a.patch(path, json={"notes": "x"}, headers={"If-Match": contact["etag"]})

    def archive() -> None:
        barrier.wait(timeout=30)
        results["archive"] = b.delete(path, headers={"If-Match": contact["etag"]})

    threads = [threading.Thread(target=patch), threading.Thread(target=archive)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(r.status_code for r in results.values()) == [200, 412], {
        k: (r.status_code, r.text) for k, r in results.items()
    }
    final = api.get(path).json()
    if results["patch"].status_code == 200:
        assert final["notes"] == "x"
        assert final["archived_at"] is None
        expected = "contact.updated"
    else:
        assert final["notes"] is None
        assert final["archived_at"] is not None
        expected = "contact.archived"
    assert [e["type"] for e in _events(api, entity_id=contact["id"])] == ["contact.created", expected]

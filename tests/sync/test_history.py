"""History: records from before the connection are backfilled both ways, records that exist on both sides
are linked rather than duplicated, and a pre-existing matter can be linked to a Clio matter by hand."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Backend, LiveServer
from tests.factories import create_contact, create_matter
from tests.sync.conftest import Clio, Connected, Workers, connect


def _clio(clio: Clio, path: str, data: dict[str, Any]) -> dict[str, Any]:
    fields = "id,display_number" if path == "/matters" else "id"
    r = clio.user.post(path, json={"data": data}, params={"fields": fields})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()["data"]
    return body


def _connect_later(
    clio: Clio, api: httpx.Client, live_server: LiveServer, backend: Backend, workers: Workers
) -> Connected:
    """Connect after the records above were made: on Clio's clock they are ten minutes old, so
    only a backfill brings them over."""
    clio.advance_clock(600)
    backend.settings.public_url = live_server.url
    connection_id = connect(api, clio, live_server)
    conn = Connected(connection_id, api, clio, backend, live_server, workers)
    conn.settle()
    return conn


def _backfill_contacts(connected: Connected) -> None:
    r = connected.api.post(
        f"/api/v1/connections/{connected.id}/backfill", json={"entity": "contact", "direction": "both"}
    )
    assert r.status_code == 202, r.text
    connected.wait(
        lambda: (
            next(s for s in connected.health()["streams"] if s["entity"] == "contact")["backfill"] or {}
        ).get("finished_at"),
        30,
        "the backfill",
    )


def _names(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(
        (
            r.get("company_name") or r.get("name")
            if r.get("kind") == "company" or r.get("type") == "Company"
            else f"{r['first_name']} {r['last_name']}"
        )
        for r in rows
    )


def test_a_backfill_links_what_both_sides_have_and_copies_the_rest(
    clio: Clio, api: httpx.Client, sync_worker: Workers, live_server: LiveServer, clean: Backend
) -> None:
    mary = create_contact(api, first_name="Mary", last_name="Both", emails=[{"address": "mary@both.example"}])
    create_contact(api, first_name="Only", last_name="Here", emails=[])
    create_contact(api, first_name="Tom", last_name="Same", emails=[{"address": "tom@one.example"}])
    _clio(
        clio,
        "/contacts",
        {
            "type": "Person",
            "first_name": "Mary",
            "last_name": "Both",
            "email_addresses": [{"name": "Work", "address": "mary@both.example"}],
            "phone_numbers": [{"name": "Work", "number": "+44 1"}],
        },
    )
    _clio(
        clio,
        "/contacts",
        {
            "type": "Person",
            "first_name": "Tom",
            "last_name": "Same",
            "email_addresses": [{"name": "Work", "address": "tom@two.example"}],
        },
    )
    _clio(clio, "/contacts", {"type": "Company", "name": "Only In Clio Ltd"})
    connected = _connect_later(clio, api, live_server, clean, sync_worker)
    assert connected.status("contact", mary["id"])["state"] == "not_synced"
    assert len(api.get("/api/v1/contacts").json()["data"]) == 3  # nothing came over by itself

    _backfill_contacts(connected)
    connected.settle()
    expected = ["Mary Both", "Only Here", "Only In Clio Ltd", "Tom Same", "Tom Same"]
    # Mary matched (same name and email): one of her on each side. Tom's emails differ: two Toms.
    assert _names(connected.clio.records("contacts")) == expected
    assert _names(api.get("/api/v1/contacts", params={"limit": 200}).json()["data"]) == expected
    # Mary was linked with no merge base: Clio's extra phone number is a difference held for review.
    status = connected.status("contact", mary["id"])
    assert status["state"] == "conflict"
    assert [c["field"] for c in status["conflicts"]] == ["phones"]
    progress = next(s for s in connected.health()["streams"] if s["entity"] == "contact")["backfill"]
    assert progress["matched"] == 1
    again = api.post(f"/api/v1/connections/{connected.id}/backfill", json={})  # matters, with their clients
    assert again.status_code == 202, again.text


def test_history_in_clio_stays_there_until_asked_for_even_when_listed_or_edited(
    clio: Clio, api: httpx.Client, sync_worker: Workers, live_server: LiveServer, clean: Backend
) -> None:
    """A full reconcile lists every Clio record and a poll sees every edit; neither brings over a record
    from before the connection (that is a backfill's job, which matches it with ours first: here the
    same person exists on both sides). A record made in Clio after connecting comes over."""
    create_contact(api, first_name="Ann", last_name="Old", emails=[{"address": "ann@old.example"}])
    old = _clio(
        clio,
        "/contacts",
        {
            "type": "Person",
            "first_name": "Ann",
            "last_name": "Old",
            "email_addresses": [{"name": "Work", "address": "ann@old.example"}],
        },
    )
    connected = _connect_later(clio, api, live_server, clean, sync_worker)
    r = clio.user.patch(f"/contacts/{old['id']}", json={"data": {"middle_name": "Edited"}})
    assert r.status_code == 200, r.text
    new = _clio(clio, "/contacts", {"type": "Person", "first_name": "Ned", "last_name": "New"})
    connected.run_now("sync.poll")  # (the webhooks may still be in their handshake)
    connected.local_id("contact", new["id"])
    connected.run_now("sync.poll")
    connected.run_now("sync.full")
    connected.settle(also=("sync.poll", "sync.full"))
    assert _names(api.get("/api/v1/contacts", params={"limit": 200}).json()["data"]) == ["Ann Old", "Ned New"]
    links = api.get(f"/api/v1/connections/{connected.id}/links", params={"entity": "contact"}).json()["data"]
    assert [link["remote_id"] for link in links] == [new["id"]]

    _backfill_contacts(connected)
    connected.settle()
    assert _names(api.get("/api/v1/contacts", params={"limit": 200}).json()["data"]) == ["Ann Old", "Ned New"]
    assert _names(connected.clio.records("contacts")) == ["Ann Old", "Ned New"]


def test_a_pre_existing_matter_is_linked_to_its_clio_matter_by_hand(
    clio: Clio, api: httpx.Client, sync_worker: Workers, live_server: LiveServer, clean: Backend
) -> None:
    client = create_contact(api, first_name="Link", last_name="Client")
    matter = create_matter(api, client_id=client["id"], title="Sale of 9 Dock Road")
    clio_client = _clio(clio, "/contacts", {"type": "Person", "first_name": "Link", "last_name": "Client"})
    existing = _clio(
        clio, "/matters", {"description": "Sale of 9 Dock Road", "client": {"id": clio_client["id"]}}
    )
    connected = _connect_later(clio, api, live_server, clean, sync_worker)
    assert connected.status("matter", matter["id"])["state"] == "not_synced"

    r = api.post(f"/api/v1/contacts/{client['id']}/sync", json={"remote_id": clio_client["id"]})
    assert r.status_code == 202, r.text
    r = api.post(f"/api/v1/matters/{matter['id']}/sync", json={"remote_id": existing["id"]})
    assert r.status_code == 202, r.text
    connected.wait(lambda: connected.status("matter", matter["id"])["state"] == "linked", what="linked")
    here = api.get(f"/api/v1/matters/{matter['id']}").json()
    assert here["display_number"] == existing["display_number"] == "00001-Client"  # Clio's number wins
    assert len(connected.clio.records("matters")) == 1
    assert len(connected.clio.records("contacts")) == 1
    other = create_matter(api, client_id=client["id"])
    taken = api.post(f"/api/v1/matters/{other['id']}/sync", json={"remote_id": existing["id"]})
    assert taken.status_code == 409
    assert "already linked" in taken.json()["detail"]


def test_a_new_clio_matter_whose_client_predates_the_connection_finds_that_client_here(
    clio: Clio, api: httpx.Client, sync_worker: Workers, live_server: LiveServer, clean: Backend
) -> None:
    """The client existed in both systems before connecting (never backfilled); a matter opened in Clio
    afterwards brings its client along, linked to the one already here, not copied."""
    ours = create_contact(
        api, first_name="Prior", last_name="Client", emails=[{"address": "prior@client.example"}]
    )
    clio_client = _clio(
        clio,
        "/contacts",
        {
            "type": "Person",
            "first_name": "Prior",
            "last_name": "Client",
            "email_addresses": [{"name": "Work", "address": "prior@client.example"}],
        },
    )
    _clio(clio, "/contacts", {"type": "Person", "first_name": "Other", "last_name": "Client"})
    connected = _connect_later(clio, api, live_server, clean, sync_worker)
    opened = _clio(
        clio, "/matters", {"description": "New work for an old client", "client": {"id": clio_client["id"]}}
    )
    connected.run_now("sync.poll")  # (the webhooks may still be in their handshake)
    local_matter = connected.local_id("matter", opened["id"])
    connected.settle()
    assert api.get(f"/api/v1/matters/{local_matter}").json()["client_id"] == ours["id"]
    assert _names(api.get("/api/v1/contacts", params={"limit": 200}).json()["data"]) == ["Prior Client"]
    status = connected.status("contact", ours["id"])
    assert (status["state"], status["link"]["remote_id"]) == ("linked", clio_client["id"])
    assert any(j["action"] == "link" for j in status["journal"])

"""Matter inception both ways, Clio's numbering written back, status and dates, practice areas, and the
rule that a matter's client is a synced contact."""

from __future__ import annotations

import uuid
from typing import Any

from tests.factories import create_contact, create_matter
from tests.sync.conftest import Connected, wait_for

FIELDS = "id,etag,display_number,number,description,status,open_date,pending_date,close_date,client{id,name},practice_area{id,name}"


def _clio_matter(connected: Connected, remote_id: int) -> dict[str, Any]:
    r = connected.clio.user.get(f"/matters/{remote_id}", params={"fields": FIELDS})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()["data"]
    return body


def _here(connected: Connected, matter_id: str) -> dict[str, Any]:
    body: dict[str, Any] = connected.api.get(f"/api/v1/matters/{matter_id}").json()
    return body


def test_a_matter_opened_here_is_created_in_clio_and_takes_its_number(connected: Connected) -> None:
    api = connected.api
    client = create_contact(api, first_name="Jane", last_name="Smith", emails=[])
    matter = create_matter(
        api, client_id=client["id"], title="Purchase of 14 Quay Street", practice_area="Conveyancing"
    )
    remote_id = connected.remote_id("matter", matter["id"])
    there = _clio_matter(connected, remote_id)
    assert there["description"] == "Purchase of 14 Quay Street"
    assert there["status"] == "Open"
    assert there["display_number"] == "00001-Smith"
    assert there["practice_area"]["name"] == "Conveyancing"
    client_remote = connected.remote_id("contact", client["id"])
    assert there["client"]["id"] == client_remote  # the client was synced first
    wait_for(
        lambda: _here(connected, matter["id"])["display_number"] == "00001-Smith", what="Clio's number here"
    )
    assert _here(connected, matter["id"])["number"] == matter["number"]  # the firm-wide sequence is ours


def test_a_matter_opened_in_clio_appears_here_with_its_client(connected: Connected) -> None:
    user = connected.clio.user
    person = user.post(
        "/contacts", json={"data": {"type": "Person", "first_name": "Ada", "last_name": "Lovelace"}}
    )
    assert person.status_code == 201, person.text
    area = user.post("/practice_areas", json={"data": {"name": "Probate"}}).json()["data"]
    r = user.post(
        "/matters",
        params={"fields": "id,display_number"},
        json={
            "data": {
                "description": "Estate of A. Lovelace",
                "client": {"id": person.json()["data"]["id"]},
                "practice_area": {"id": area["id"]},
                "status": "pending",
            }
        },
    )
    assert r.status_code == 201, r.text
    remote = r.json()["data"]
    local_id = connected.local_id("matter", remote["id"])
    here = _here(connected, local_id)
    assert here["display_number"] == remote["display_number"] == "00001-Lovelace"
    assert (here["title"], here["status"], here["practice_area"]) == (
        "Estate of A. Lovelace",
        "pending",
        "Probate",
    )
    assert here["pending_date"] is not None
    client = connected.api.get(f"/api/v1/contacts/{here['client_id']}").json()
    assert (client["first_name"], client["last_name"]) == ("Ada", "Lovelace")


def test_status_and_its_dates_cross_both_ways(connected: Connected) -> None:
    api = connected.api
    matter = create_matter(api)
    remote_id = connected.remote_id("matter", matter["id"])
    connected.settle()
    closing = matter["open_date"]
    r = api.patch(f"/api/v1/matters/{matter['id']}", json={"status": "closed", "close_date": closing})
    assert r.status_code == 200, r.text
    wait_for(lambda: _clio_matter(connected, remote_id)["status"] == "Closed", what="closed in Clio")
    assert _clio_matter(connected, remote_id)["close_date"] == closing
    connected.settle()
    r = connected.clio.user.patch(f"/matters/{remote_id}", json={"data": {"status": "open"}})
    assert r.status_code == 200, r.text
    wait_for(lambda: _here(connected, matter["id"])["status"] == "open", what="reopened here")
    assert _here(connected, matter["id"])["close_date"] is None
    connected.settle()
    assert connected.status("matter", matter["id"])["state"] == "linked"


def test_without_auto_sync_an_unsynced_client_is_refused_by_name(connected: Connected) -> None:
    api = connected.api
    connected.settings(auto_sync_clients=False)
    old = create_contact(api, first_name="Old", last_name="Client")
    _forget_link(connected, old["id"])
    r = api.post("/api/v1/matters", json={"title": "Refused", "client_id": old["id"]})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["errors"][0]["field"] == "body.client_id"
    assert "Old Client" in problem["errors"][0]["message"]
    assert f"/api/v1/contacts/{old['id']}/sync" in problem["errors"][0]["message"]
    r = api.post(f"/api/v1/contacts/{old['id']}/sync", json={})
    assert r.status_code == 202, r.text
    connected.remote_id("contact", old["id"])
    matter = create_matter(api, client_id=old["id"])
    connected.remote_id("matter", matter["id"])


def _forget_link(connected: Connected, contact_id: str) -> None:
    """Make a contact look as if it existed before the connection: no link, nothing pending."""
    from sqlalchemy import delete

    from casebridge.db.session import unit_of_work
    from casebridge.models import SyncLink

    remote_id = connected.remote_id("contact", contact_id)
    connected.settle()
    with unit_of_work(connected.backend.db.writer) as session:
        session.execute(delete(SyncLink).where(SyncLink.local_id == uuid.UUID(contact_id)))
    assert connected.clio.user.delete(f"/contacts/{remote_id}").status_code == 204


def test_a_client_archived_here_before_it_synced_comes_back_for_its_live_matter(connected: Connected) -> None:
    """In Clio a matter's client cannot be deleted; here a case handler archived the client of a live
    matter before either had synced. The archive cannot stand: the client is restored (and says why),
    then both are created in Clio."""
    connected.settle()
    with connected.workers.paused():
        client = create_contact(connected.api, first_name="Archived", last_name="Early")
        matter = create_matter(connected.api, client_id=client["id"], title="Needs its client")
        r = connected.api.delete(f"/api/v1/contacts/{client['id']}")
        assert r.status_code == 200, r.text
    remote_matter = connected.remote_id("matter", matter["id"], timeout=30)
    remote_client = connected.remote_id("contact", client["id"])
    connected.settle()
    assert _clio_matter(connected, remote_matter)["client"]["id"] == remote_client
    assert connected.api.get(f"/api/v1/contacts/{client['id']}").json()["archived_at"] is None
    journal = connected.status("contact", client["id"])["journal"]
    restored = [j for j in journal if j["action"] == "restore_local"]
    assert restored
    assert "refers to it" in restored[0]["summary"]

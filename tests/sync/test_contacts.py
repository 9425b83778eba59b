"""Contacts in two-way sync with Clio, over real HTTP: both directions, edits, nested lists, echoes."""

from __future__ import annotations

from typing import Any

from tests.factories import create_contact
from tests.sync.conftest import Connected, wait_for


def _clio_contact(connected: Connected, remote_id: int) -> dict[str, Any]:
    fields = "id,etag,type,name,first_name,last_name,prefix,email_addresses{name,address,primary},phone_numbers{name,number,primary},addresses{name,street,city,province,postal_code,country,primary}"
    r = connected.clio.user.get(f"/contacts/{remote_id}", params={"fields": fields})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()["data"]
    return body


def test_a_contact_made_here_appears_in_clio_and_edits_follow(connected: Connected) -> None:
    api = connected.api
    contact = create_contact(
        api,
        title="Ms",
        first_name="Jane",
        last_name="Smith",
        emails=[{"address": "jane@smith.example", "kind": "home"}],
        phones=[{"number": "+44 20 7946 0000", "kind": "mobile"}],
        addresses=[{"kind": "home", "street": "1 Quay St", "city": "Bristol", "postal_code": "BS1 4DJ"}],
    )
    remote_id = connected.remote_id("contact", contact["id"])
    there = _clio_contact(connected, remote_id)
    assert (there["type"], there["first_name"], there["last_name"], there["prefix"]) == (
        "Person",
        "Jane",
        "Smith",
        "Ms",
    )
    assert there["email_addresses"] == [{"name": "Home", "address": "jane@smith.example", "primary": True}]
    assert there["phone_numbers"] == [{"name": "Mobile", "number": "+44 20 7946 0000", "primary": True}]
    assert there["addresses"][0]["province"] is None
    assert there["addresses"][0]["city"] == "Bristol"

    r = api.patch(
        f"/api/v1/contacts/{contact['id']}",
        json={
            "last_name": "Smith-Jones",
            "emails": [
                {"address": "jane@sj.example"},
                {"address": "j@work.example", "kind": "work", "primary": True},
            ],
        },
    )
    assert r.status_code == 200, r.text
    wait_for(
        lambda: _clio_contact(connected, remote_id)["last_name"] == "Smith-Jones", what="the edit in Clio"
    )
    there = _clio_contact(connected, remote_id)
    assert there["email_addresses"] == [
        {"name": "Work", "address": "jane@sj.example", "primary": False},
        {"name": "Work", "address": "j@work.example", "primary": True},
    ]
    connected.settle()  # (Clio shows the edit as soon as it answers our PATCH; our record of it follows)
    status = connected.status("contact", contact["id"])
    assert status["state"] == "linked"
    actions = [j["action"] for j in status["journal"]]
    assert "create_remote" in actions
    assert "push" in actions


def test_a_contact_made_in_clio_appears_here_and_edits_follow(connected: Connected) -> None:
    user = connected.clio.user
    r = user.post(
        "/contacts",
        params={"fields": "id,etag"},
        json={
            "data": {
                "type": "Company",
                "name": "Acme Conveyancing Ltd",
                "email_addresses": [{"name": "Work", "address": "info@acme.example", "default_email": True}],
            }
        },
    )
    assert r.status_code == 201, r.text
    remote = r.json()["data"]
    local_id = connected.local_id("contact", remote["id"])
    here = connected.api.get(f"/api/v1/contacts/{local_id}").json()
    assert (here["kind"], here["company_name"]) == ("company", "Acme Conveyancing Ltd")
    assert [(e["address"], e["kind"], e["primary"]) for e in here["emails"]] == [
        ("info@acme.example", "work", True)
    ]

    r = user.patch(f"/contacts/{remote['id']}", json={"data": {"name": "Acme Law LLP"}})
    assert r.status_code == 200, r.text
    wait_for(
        lambda: connected.api.get(f"/api/v1/contacts/{local_id}").json()["company_name"] == "Acme Law LLP",
        what="Clio's edit here",
    )


def test_a_change_crosses_once_and_its_echo_costs_nothing(connected: Connected) -> None:
    api = connected.api
    contact = create_contact(api, first_name="Echo", last_name="Once", emails=[])
    remote_id = connected.remote_id("contact", contact["id"])
    connected.settle()
    before = connected.clio.our_calls()["total"]
    r = api.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "Echoed"})
    assert r.status_code == 200
    wait_for(lambda: _clio_contact(connected, remote_id)["first_name"] == "Echoed", what="the edit in Clio")
    connected.settle()
    spent = connected.clio.our_calls()["total"] - before
    assert spent == 1, f"one PATCH for one change, nothing for the webhook that echoes it back; spent {spent}"
    # Nothing changed here because of the echo: the contact's version moved once (our edit).
    assert api.get(f"/api/v1/contacts/{contact['id']}").json()["etag"] == r.json()["etag"]

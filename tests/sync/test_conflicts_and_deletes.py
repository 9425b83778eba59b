"""Concurrent edits on both sides under each conflict policy, resolving held conflicts through the API,
and deletes under each delete policy."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.factories import create_contact, create_matter
from tests.sync.conftest import Connected, wait_for


def _both_edit(
    connected: Connected,
    contact_id: str,
    remote_id: int,
    *,
    here: dict[str, Any],
    there: dict[str, Any],
    apart: float = 0.0,
) -> None:
    """Edit the contact on both sides while no worker runs, so neither sees the other's change first
    (``apart`` seconds between them: Clio's timestamps are whole seconds)."""
    connected.settle()
    with connected.workers.paused():
        r = connected.api.patch(f"/api/v1/contacts/{contact_id}", json=here)
        assert r.status_code == 200, r.text
        time.sleep(apart)
        r = connected.clio.user.patch(f"/contacts/{remote_id}", json={"data": there})
        assert r.status_code == 200, r.text
        wait_for(
            lambda: (
                connected.health()["webhooks"][0]["deliveries"]
                + connected.health()["webhooks"][1]["deliveries"]
                >= 1
            ),
            what="Clio's webhook",
        )


def _clio_first_name(connected: Connected, remote_id: int) -> str:
    return str(
        connected.clio.user.get(f"/contacts/{remote_id}", params={"fields": "first_name"}).json()["data"][
            "first_name"
        ]
    )


def _first_name(connected: Connected, contact_id: str) -> str:
    return str(connected.api.get(f"/api/v1/contacts/{contact_id}").json()["first_name"])


def test_a_field_changed_on_both_sides_is_held_then_resolved(connected: Connected) -> None:
    contact = create_contact(connected.api, first_name="Sam", last_name="Held")
    remote_id = connected.remote_id("contact", contact["id"])
    _both_edit(
        connected,
        contact["id"],
        remote_id,
        here={"first_name": "Samuel", "middle_name": "J"},
        there={"first_name": "Samantha", "last_name": "Held-Clio"},
    )
    status = wait_for(
        lambda: (s := connected.status("contact", contact["id"]))["state"] == "conflict" and s,
        what="the conflict",
    )
    (conflict,) = [c for c in status["conflicts"] if c["state"] == "open"]
    assert (conflict["field"], conflict["base_value"], conflict["local_value"], conflict["remote_value"]) == (
        "first_name",
        "Sam",
        "Samuel",
        "Samantha",
    )
    connected.settle()
    # The other fields crossed; the held one stayed as each side had it.
    assert _first_name(connected, contact["id"]) == "Samuel"
    assert _clio_first_name(connected, remote_id) == "Samantha"
    assert connected.api.get(f"/api/v1/contacts/{contact['id']}").json()["last_name"] == "Held-Clio"
    listed = connected.api.get(f"/api/v1/connections/{connected.id}/conflicts").json()["data"]
    assert [c["id"] for c in listed] == [conflict["id"]]
    assert connected.health()["open_conflicts"] == 1

    r = connected.api.post(f"/api/v1/sync/conflicts/{conflict['id']}/resolve", json={"value": "Sammy"})
    assert r.status_code == 200, r.text
    wait_for(lambda: _clio_first_name(connected, remote_id) == "Sammy", what="the chosen value in Clio")
    wait_for(lambda: _first_name(connected, contact["id"]) == "Sammy", what="the chosen value here")
    wait_for(lambda: connected.status("contact", contact["id"])["state"] == "linked", what="linked again")
    again = connected.api.post(f"/api/v1/sync/conflicts/{conflict['id']}/resolve", json={"pick": "clio"})
    assert again.status_code == 409
    bad = connected.api.post(f"/api/v1/sync/conflicts/{conflict['id']}/resolve", json={})
    assert bad.status_code == 422


def test_a_matter_conflict_is_settled_by_picking_a_side_and_a_bad_value_is_refused(
    connected: Connected,
) -> None:
    client = create_contact(connected.api, first_name="Pick", last_name="Side")
    matter = create_matter(connected.api, client_id=client["id"], title="Original title")
    remote_id = connected.remote_id("matter", matter["id"])
    connected.settle()
    with connected.workers.paused():
        r = connected.api.patch(f"/api/v1/matters/{matter['id']}", json={"title": "Title here"})
        assert r.status_code == 200, r.text
        r = connected.clio.user.patch(
            f"/matters/{remote_id}", json={"data": {"description": "Title in Clio"}}
        )
        assert r.status_code == 200, r.text
    status = connected.wait(
        lambda: (s := connected.status("matter", matter["id"]))["state"] == "conflict" and s,
        what="the conflict",
    )
    (conflict,) = [c for c in status["conflicts"] if c["state"] == "open"]
    assert (conflict["field"], conflict["local_value"], conflict["remote_value"]) == (
        "title",
        "Title here",
        "Title in Clio",
    )
    url = f"/api/v1/sync/conflicts/{conflict['id']}/resolve"
    for bad in (5, "  ", ["a list"]):
        r = connected.api.post(url, json={"value": bad})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == ["body.value"]
    # Nothing was taken from the refused attempts: the conflict is still open.
    assert [
        c["id"] for c in connected.api.get(f"/api/v1/connections/{connected.id}/conflicts").json()["data"]
    ] == [conflict["id"]]
    r = connected.api.post(url, json={"pick": "clio"})
    assert r.status_code == 200, r.text
    assert r.json()["resolution"] == "clio"
    wait_for(
        lambda: connected.api.get(f"/api/v1/matters/{matter['id']}").json()["title"] == "Title in Clio",
        what="Clio's title here",
    )
    connected.settle()
    assert connected.status("matter", matter["id"])["state"] == "linked"
    assert [m["description"] for m in connected.clio.records("matters")] == ["Title in Clio"]


@pytest.mark.parametrize(
    ("policy", "winner"), [("casebridge_wins", "Casebridge"), ("clio_wins", "Clio"), ("newest_wins", "Clio")]
)
def test_other_policies_settle_it_without_a_person(connected: Connected, policy: str, winner: str) -> None:
    connected.settings(conflict_policy={"contact": policy})
    contact = create_contact(connected.api, first_name="Pat", last_name="Policy")
    remote_id = connected.remote_id("contact", contact["id"])
    # For newest_wins Clio's edit is made second, so it is the newer one.
    _both_edit(
        connected,
        contact["id"],
        remote_id,
        here={"first_name": "Casebridge"},
        there={"first_name": "Clio"},
        apart=1.1,
    )
    wait_for(lambda: _first_name(connected, contact["id"]) == winner, what=f"{winner} here")
    wait_for(lambda: _clio_first_name(connected, remote_id) == winner, what=f"{winner} in Clio")
    connected.settle()
    assert connected.status("contact", contact["id"])["state"] == "linked"
    assert connected.health()["open_conflicts"] == 0


def test_deletes_unlink_by_default_and_say_so_on_the_record(connected: Connected) -> None:
    contact = create_contact(connected.api, first_name="Del", last_name="Clio")
    remote_id = connected.remote_id("contact", contact["id"])
    connected.settle()
    assert connected.clio.user.delete(f"/contacts/{remote_id}").status_code == 204
    status = wait_for(
        lambda: (s := connected.status("contact", contact["id"]))["state"] == "unlinked" and s,
        what="unlinked",
    )
    assert "deleted in Clio" in status["link"]["unlinked_reason"]
    assert connected.api.get(f"/api/v1/contacts/{contact['id']}").json()["archived_at"] is None  # kept here

    other = create_contact(connected.api, first_name="Del", last_name="Here")
    other_remote = connected.remote_id("contact", other["id"])
    connected.settle()
    assert connected.api.delete(f"/api/v1/contacts/{other['id']}").status_code == 200
    wait_for(lambda: connected.status("contact", other["id"])["state"] == "unlinked", what="unlinked")
    assert connected.clio.user.get(f"/contacts/{other_remote}").status_code == 200  # kept in Clio


def test_propagate_deletes_cross_both_ways(connected: Connected) -> None:
    connected.settings(delete_policy={"contact": "propagate", "matter": "propagate"})
    matter = create_matter(connected.api)
    matter_remote = connected.remote_id("matter", matter["id"])
    connected.settle()
    assert connected.api.delete(f"/api/v1/matters/{matter['id']}").status_code == 200
    wait_for(
        lambda: connected.clio.user.get(f"/matters/{matter_remote}").status_code == 404,
        what="deleted in Clio",
    )

    contact = create_contact(connected.api, first_name="Gone", last_name="Everywhere")
    remote_id = connected.remote_id("contact", contact["id"])
    connected.settle()
    assert connected.clio.user.delete(f"/contacts/{remote_id}").status_code == 204
    wait_for(
        lambda: connected.api.get(f"/api/v1/contacts/{contact['id']}").json()["archived_at"] is not None,
        what="archived here",
    )


def test_ignore_keeps_the_link_through_an_archive(connected: Connected) -> None:
    connected.settings(delete_policy={"contact": "ignore"})
    contact = create_contact(connected.api, first_name="Ig", last_name="Nored")
    remote_id = connected.remote_id("contact", contact["id"])
    connected.settle()
    assert connected.api.delete(f"/api/v1/contacts/{contact['id']}").status_code == 200
    connected.settle()
    status = connected.status("contact", contact["id"])
    assert status["state"] == "linked"
    assert "delete policy is ignore" in status["journal"][0]["summary"]  # said on the record
    assert connected.clio.user.get(f"/contacts/{remote_id}").status_code == 200
    assert connected.api.post(f"/api/v1/contacts/{contact['id']}/restore").status_code == 200
    r = connected.api.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "Back"})
    assert r.status_code == 200
    wait_for(lambda: _clio_first_name(connected, remote_id) == "Back", what="syncing again after the restore")

"""Clio's rate limit: a storm of changes never sends a request beyond the limit and loses nothing; forced
429s are waited out; interactive changes go ahead of a bulk backfill."""

from __future__ import annotations

import uuid

from sqlalchemy import delete

from casebridge.db.session import unit_of_work
from casebridge.models import SyncLink
from tests.factories import create_contact
from tests.sync.conftest import Connected, wait_for


def _clio_last_names(connected: Connected) -> list[str]:
    return sorted(str(c.get("last_name")) for c in connected.clio.records("contacts"))


def test_a_storm_of_changes_stays_within_the_limit_and_loses_nothing(connected: Connected) -> None:
    connected.settle()
    connected.clio.settings(rate_limit=8, rate_limit_window=2)
    contacts = [
        create_contact(connected.api, first_name="Storm", last_name=f"S{n:02d}", emails=[]) for n in range(16)
    ]
    for c in contacts[:6]:
        r = connected.api.patch(f"/api/v1/contacts/{c['id']}", json={"first_name": "Stormier"})
        assert r.status_code == 200
    connected.wait(
        lambda: _clio_last_names(connected) == [f"S{n:02d}" for n in range(16)], 60, "every contact in Clio"
    )
    connected.settle(60)
    firsts = {c["last_name"]: c["first_name"] for c in connected.clio.records("contacts")}
    assert all(firsts[f"S{n:02d}"] == "Stormier" for n in range(6))
    assert connected.clio.rate_limited() == 0, "a request was sent beyond the limit"


def test_forced_429s_are_waited_out(connected: Connected) -> None:
    connected.settle()
    connected.clio.settings(rate_limit_window=1)  # Retry-After is what is left of the window
    connected.clio.faults(rate_limit_burst=3)
    contacts = [
        create_contact(connected.api, first_name="Burst", last_name=f"B{n}", emails=[]) for n in range(3)
    ]
    for c in contacts:
        connected.remote_id("contact", c["id"], timeout=30)
    with connected.clio.admin() as admin:
        assert admin.get("/faults").json()["injected"]["rate_limited"] == 3
    assert _clio_last_names(connected) == ["B0", "B1", "B2"]


def test_interactive_changes_go_ahead_of_a_backfill(connected: Connected) -> None:
    history = [
        create_contact(connected.api, first_name="Old", last_name=f"H{n:02d}", emails=[]) for n in range(16)
    ]
    connected.settle()
    # Make them history: records from before the connection, never synced.
    with unit_of_work(connected.backend.db.writer) as session:
        session.execute(delete(SyncLink).where(SyncLink.local_id.in_([uuid.UUID(c["id"]) for c in history])))
    for row in connected.clio.records("contacts"):
        assert connected.clio.user.delete(f"/contacts/{row['id']}").status_code == 204
    connected.settle()
    connected.clio.settings(rate_limit=6, rate_limit_window=2)
    r = connected.api.post(
        f"/api/v1/connections/{connected.id}/backfill", json={"entity": "contact", "direction": "push"}
    )
    assert r.status_code == 202, r.text
    wait_for(lambda: len(connected.clio.records("contacts")) >= 3, 30, "the backfill to start")
    urgent = create_contact(connected.api, first_name="Urgent", last_name="Now", emails=[])
    urgent_remote = connected.remote_id("contact", urgent["id"], timeout=30)
    wait_for(lambda: len(connected.clio.records("contacts")) == 17, 90, "the backfill to finish")
    backfilled = [c["id"] for c in connected.clio.records("contacts") if c["last_name"].startswith("H")]
    assert urgent_remote < max(backfilled), "the interactive change waited for the whole backfill"
    assert connected.clio.rate_limited() == 0
    assert sorted(c["last_name"] for c in connected.clio.records("contacts")) == sorted(
        [f"H{n:02d}" for n in range(16)] + ["Now"]
    )

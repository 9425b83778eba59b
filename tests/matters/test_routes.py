"""Matters over HTTP: numbering, status dates, client and participants, integration-owned numbers."""

from __future__ import annotations

import httpx

from casebridge.kit.context import Role
from tests.conftest import MakeClient
from tests.factories import create_contact, create_matter, create_user


def test_numbering_is_sequential_with_default_scheme(api: httpx.Client) -> None:
    smith = create_contact(api, first_name="Jane", last_name="Smith")
    acme = create_contact(api, kind="company", company_name="Acme Holdings", first_name=None, last_name=None)
    first = create_matter(api, client_id=smith["id"])
    second = create_matter(api, client_id=acme["id"])
    assert (first["number"], first["display_number"]) == (1, "00001-Smith")
    assert (second["number"], second["display_number"]) == (2, "00002-Acme Holdings")
    assert first["status"] == "open"
    assert first["open_date"] is not None


def test_numbering_scheme_setting(make_client: MakeClient) -> None:
    admin = make_client(Role.ADMIN)
    staff = make_client(Role.STAFF)
    current = admin.get("/api/v1/settings/matter-numbering").json()
    assert current["scheme"] == "{number:05d}-{client_last_name}"
    assert current["example"] == "00001-Smith"
    assert (
        staff.put("/api/v1/settings/matter-numbering", json={"scheme": "{year}/{number}"}).status_code == 403
    )
    for bad, why in [
        ("{client_last_name}", "{number}"),
        ("{number.__class__}", "unknown field"),
        ("{secret}", "unknown field"),
        ("{number!r}", "conversions"),
        ("{number:zz}", "cannot be applied"),
    ]:
        r = admin.put("/api/v1/settings/matter-numbering", json={"scheme": bad})
        assert r.status_code == 422, bad
        assert why in r.json()["errors"][0]["message"], (bad, r.json())
    ok = admin.put(
        "/api/v1/settings/matter-numbering", json={"scheme": "{practice_area}-{year}-{number:04d}"}
    )
    assert ok.status_code == 200
    m = create_matter(admin, practice_area="PROB")
    assert m["display_number"].startswith("PROB-")
    assert m["display_number"].endswith("-0001")


def test_display_number_override_only_by_integration_or_admin(make_client: MakeClient) -> None:
    integration = make_client(Role.INTEGRATION)
    staff = make_client(Role.STAFF)
    client = create_contact(staff)
    refused = staff.post(
        "/api/v1/matters", json={"title": "T", "client_id": client["id"], "display_number": "CLIO-1"}
    )
    assert refused.status_code == 403
    assert "display_number" in refused.json()["detail"]
    m = create_matter(integration, client_id=client["id"], display_number="00077-Clio")
    assert m["display_number"] == "00077-Clio"
    dup = integration.post(
        "/api/v1/matters", json={"title": "T2", "client_id": client["id"], "display_number": "00077-Clio"}
    )
    assert dup.status_code == 409
    renumbered = integration.patch(f"/api/v1/matters/{m['id']}", json={"display_number": "00078-Clio"})
    assert renumbered.json()["display_number"] == "00078-Clio"
    assert staff.patch(f"/api/v1/matters/{m['id']}", json={"display_number": "X"}).status_code == 403


def test_status_changes_set_dates_and_raise_status_event(api: httpx.Client) -> None:
    m = create_matter(api)
    pending = api.patch(f"/api/v1/matters/{m['id']}", json={"status": "pending"}).json()
    assert pending["pending_date"] is not None
    closed = api.patch(f"/api/v1/matters/{m['id']}", json={"status": "closed", "title": "Renamed"}).json()
    assert closed["close_date"] is not None
    reopened = api.patch(f"/api/v1/matters/{m['id']}", json={"status": "open"}).json()
    assert reopened["close_date"] is None
    types = [e["type"] for e in api.get(f"/api/v1/matters/{m['id']}/history").json()["data"]]
    assert types == [
        "matter.created",
        "matter.status_changed",
        "matter.status_changed",
        "matter.updated",
        "matter.status_changed",
    ]
    bad = api.patch(f"/api/v1/matters/{m['id']}", json={"close_date": "2020-01-01"})
    assert bad.status_code == 422


def test_client_participants_fee_and_responsible(api: httpx.Client) -> None:
    lawyer = create_user(api)
    other_side = create_contact(api, last_name="Jones")
    m = create_matter(
        api,
        responsible_user_id=lawyer["id"],
        practice_area="Conveyancing",
        fee_estimate={"amount": "2500.00", "currency": "GBP"},
        participants=[{"contact_id": other_side["id"], "role": "other side"}],
    )
    assert m["fee_estimate"] == {"amount": "2500.00", "currency": "GBP"}
    assert [(p["contact_id"], p["role"]) for p in m["participants"]] == [(other_side["id"], "other side")]
    unknown = "00000000-0000-0000-0000-000000000001"
    r = api.post("/api/v1/matters", json={"title": "X", "client_id": unknown})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.client_id"
    r = api.patch(f"/api/v1/matters/{m['id']}", json={"participants": [{"contact_id": unknown, "role": "x"}]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.participants.0.contact_id"
    r = api.patch(f"/api/v1/matters/{m['id']}", json={"fee_estimate": {"amount": 12.5, "currency": "GBP"}})
    assert r.status_code == 422
    cleared = api.patch(f"/api/v1/matters/{m['id']}", json={"fee_estimate": None, "participants": []}).json()
    assert cleared["fee_estimate"] is None
    assert cleared["participants"] == []


def test_list_filters_archive_and_paging(api: httpx.Client) -> None:
    client = create_contact(api)
    made = [create_matter(api, client_id=client["id"], practice_area="Probate") for _ in range(5)]
    other = create_matter(api, practice_area="Family")
    probate = api.get("/api/v1/matters", params={"practice_area": "Probate", "limit": 2})
    page = probate.json()
    assert [m["id"] for m in page["data"]] == [m["id"] for m in made[:2]]
    ids = []
    cursor = None
    while True:
        params: dict[str, object] = {"client_id": client["id"], "limit": 2, "order": "-number"}
        if cursor:
            params["cursor"] = cursor
        body = api.get("/api/v1/matters", params=params).json()
        ids += [m["id"] for m in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert ids == [m["id"] for m in reversed(made)]
    assert api.delete(f"/api/v1/matters/{other['id']}").status_code == 200
    listed = [m["id"] for m in api.get("/api/v1/matters").json()["data"]]
    assert other["id"] not in listed
    assert api.patch(f"/api/v1/matters/{other['id']}", json={"title": "x"}).status_code == 409
    assert api.post(f"/api/v1/matters/{other['id']}/restore").status_code == 200
    found = api.get("/api/v1/matters", params={"q": other["display_number"]}).json()["data"]
    assert [m["id"] for m in found] == [other["id"]]

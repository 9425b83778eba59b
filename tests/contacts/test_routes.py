"""Contacts over HTTP."""

from __future__ import annotations

import httpx

from casebridge.kit.context import Role
from tests.conftest import MakeClient
from tests.factories import create_contact


def test_create_read_update_archive_restore(api: httpx.Client) -> None:
    created = create_contact(
        api,
        first_name="Grace",
        last_name="Hopper",
        emails=[
            {"address": "grace@navy.example", "kind": "work"},
            {"address": "g@home.example", "kind": "home"},
        ],
        phones=[{"number": "+44 20 7946 0000", "kind": "mobile"}],
        addresses=[{"street": "1 Main St", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}],
        party_types=["client", "other"],
    )
    assert created["display_name"] == "Grace Hopper"
    assert [e["primary"] for e in created["emails"]] == [True, False]
    assert created["party_types"] == ["client", "other"]

    got = api.get(f"/api/v1/contacts/{created['id']}")
    assert got.status_code == 200
    assert got.headers["etag"] == created["etag"]
    assert got.json() == created

    email_id = created["emails"][1]["id"]
    patched = api.patch(
        f"/api/v1/contacts/{created['id']}",
        json={
            "last_name": "Murray Hopper",
            "emails": [{"id": email_id, "address": "g@home.example", "primary": True}],
        },
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["last_name"] == "Murray Hopper"
    assert [(e["id"], e["primary"]) for e in body["emails"]] == [(email_id, True)]
    assert body["etag"] != created["etag"]

    archived = api.delete(f"/api/v1/contacts/{created['id']}")
    assert archived.status_code == 200
    assert archived.json()["archived_at"] is not None
    listed = api.get("/api/v1/contacts").json()["data"]
    assert created["id"] not in [c["id"] for c in listed]
    listed_all = api.get("/api/v1/contacts", params={"include_archived": True}).json()["data"]
    assert created["id"] in [c["id"] for c in listed_all]

    restored = api.post(f"/api/v1/contacts/{created['id']}/restore")
    assert restored.status_code == 200
    assert restored.json()["archived_at"] is None

    history = api.get(f"/api/v1/contacts/{created['id']}/history").json()["data"]
    assert [e["type"] for e in history] == [
        "contact.created",
        "contact.updated",
        "contact.archived",
        "contact.restored",
    ]
    assert history[1]["changes"]["last_name"] == {"old": "Hopper", "new": "Murray Hopper"}


def test_company_needs_company_name(api: httpx.Client) -> None:
    r = api.post("/api/v1/contacts", json={"kind": "company", "first_name": "x"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "body.company_name"


def test_validation_errors_name_fields(api: httpx.Client) -> None:
    r = api.post(
        "/api/v1/contacts",
        json={"kind": "alien", "last_name": "X", "emails": [{"address": "not-an-email"}], "bogus": 1},
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"body.kind", "body.emails.0.address", "body.bogus"} <= fields


def test_two_primaries_rejected(api: httpx.Client) -> None:
    r = api.post(
        "/api/v1/contacts",
        json={
            "kind": "person",
            "last_name": "X",
            "emails": [
                {"address": "a@b.example", "primary": True},
                {"address": "c@d.example", "primary": True},
            ],
        },
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.emails"


def test_filters_and_cursor_paging(api: httpx.Client) -> None:
    made = [create_contact(api, last_name=f"Page{i:02d}") for i in range(7)]
    create_contact(api, kind="company", company_name="Acme Searches Ltd", party_types=["supplier"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 3, "party_type": "client", "order": "-created_at"}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/api/v1/contacts", params=params).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [c["id"] for c in reversed(made)]
    suppliers = api.get("/api/v1/contacts", params={"party_type": "supplier"}).json()["data"]
    assert [s["company_name"] for s in suppliers] == ["Acme Searches Ltd"]
    found = api.get("/api/v1/contacts", params={"q": "searches"}).json()["data"]
    assert len(found) == 1
    bad = api.get("/api/v1/contacts", params={"cursor": "garbage!!"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.cursor"


def test_mastered_records_only_changed_by_integration(make_client: MakeClient) -> None:
    staff = make_client(Role.STAFF)
    integration = make_client(Role.INTEGRATION)
    body = {
        "kind": "company",
        "company_name": "Land Registry",
        "party_types": ["supplier"],
        "mastered_by": "pms",
    }
    refused = staff.post("/api/v1/contacts", json=body)
    assert refused.status_code == 403
    assert "mastered in 'pms'" in refused.json()["detail"]
    made = integration.post("/api/v1/contacts", json=body)
    assert made.status_code == 201
    cid = made.json()["id"]
    edit = staff.patch(f"/api/v1/contacts/{cid}", json={"notes": "hello"})
    assert edit.status_code == 403
    assert "only an integration" in edit.json()["detail"]
    assert staff.delete(f"/api/v1/contacts/{cid}").status_code == 403
    assert integration.patch(f"/api/v1/contacts/{cid}", json={"notes": "ok"}).status_code == 200


def test_unknown_contact_404(api: httpx.Client) -> None:
    r = api.get("/api/v1/contacts/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404
    assert r.json()["type"] == "/problems/not-found"


def test_updated_since_accepts_naive_and_offset_times(api: httpx.Client) -> None:
    old = create_contact(api, last_name="Before")
    later = api.get("/api/v1/contacts", params={"updated_since": "2999-01-01T00:00:00"})
    assert later.status_code == 200
    assert later.json()["data"] == []
    since_epoch = api.get("/api/v1/contacts", params={"updated_since": "2000-01-01T00:00:00+02:00"})
    assert [c["id"] for c in since_epoch.json()["data"]] == [old["id"]]
    bad = api.get("/api/v1/contacts", params={"updated_since": "yesterday"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.updated_since"


def test_a_patch_may_add_new_items_beside_kept_ones(api: httpx.Client) -> None:
    """New nested items in a PATCH (no id) get ids at once: the change's event lists them (was a 500)."""
    contact = create_contact(api, emails=[{"address": "old@example.com"}])
    kept = contact["emails"][0]
    r = api.patch(
        f"/api/v1/contacts/{contact['id']}",
        json={"emails": [{"id": kept["id"], "address": kept["address"]}, {"address": "new@example.com"}]},
    )
    assert r.status_code == 200, r.text
    emails = r.json()["emails"]
    assert [e["address"] for e in emails] == ["old@example.com", "new@example.com"]
    assert emails[0]["id"] == kept["id"]
    assert emails[1]["id"]

"""Practice areas: CRUD, the name rule, a matter's ``practice_area{id}``, and the delete rule for an area
in use."""

from __future__ import annotations

import httpx

from tests.sandbox.conftest import Sandbox, ok

FIELDS = "id,etag,name,code,category,created_at,updated_at"


def _area(clio: httpx.Client, **data: object) -> dict[str, object]:
    body = ok(clio.post("/practice_areas.json", params={"fields": FIELDS}, json={"data": data}), 201)
    result: dict[str, object] = body["data"]
    return result


def test_an_area_is_created_read_updated_listed_and_deleted(clio: httpx.Client) -> None:
    area = _area(clio, name="Conveyancing", code="CONV", category="real_estate")
    assert (area["name"], area["code"], area["category"]) == ("Conveyancing", "CONV", "real_estate")
    assert ok(clio.get(f"/practice_areas/{area['id']}", params={"fields": FIELDS}))["data"] == area
    _area(clio, name="Family")
    by_name = ok(clio.get("/practice_areas", params={"name": "conveyancing", "fields": "id,name"}))
    assert by_name["data"] == [{"id": area["id"], "name": "Conveyancing"}]
    ordered = ok(clio.get("/practice_areas", params={"order": "name(desc)", "fields": "name"}))
    assert [a["name"] for a in ordered["data"]] == ["Family", "Conveyancing"]
    renamed = ok(
        clio.patch(
            f"/practice_areas/{area['id']}",
            params={"fields": FIELDS},
            headers={"If-Match": str(area["etag"])},
            json={"data": {"name": "Residential conveyancing"}},
        )
    )["data"]
    assert renamed["name"] == "Residential conveyancing"
    stale = clio.patch(
        f"/practice_areas/{area['id']}",
        headers={"If-Match": str(area["etag"])},
        json={"data": {"name": "Stale"}},
    )
    assert stale.status_code == 412
    assert clio.delete(f"/practice_areas/{area['id']}.json").status_code == 204
    assert clio.get(f"/practice_areas/{area['id']}").status_code == 404


def test_names_are_unique_and_categories_are_clios(clio: httpx.Client) -> None:
    _area(clio, name="Probate")
    taken = clio.post("/practice_areas", json={"data": {"name": "PROBATE"}})
    assert taken.status_code == 422
    assert "already been taken" in taken.json()["error"]["message"]
    bad = clio.post("/practice_areas", json={"data": {"name": "Odd", "category": "astrology"}})
    assert bad.status_code == 422
    blank = clio.post("/practice_areas", json={"data": {"code": "X"}})
    assert blank.status_code == 422
    assert len(ok(clio.get("/practice_areas"))["data"]) == 1


def test_a_matter_refers_to_an_area_which_cannot_then_be_deleted(
    sandbox: Sandbox, clio: httpx.Client
) -> None:
    area = _area(clio, name="Litigation")
    client = ok(clio.post("/contacts", json={"data": {"type": "Person", "last_name": "Smith"}}), 201)["data"]
    matter = ok(
        clio.post(
            "/matters",
            params={"fields": "id,practice_area{id,name}"},
            json={
                "data": {
                    "description": "Claim",
                    "client": {"id": client["id"]},
                    "practice_area": {"id": area["id"]},
                }
            },
        ),
        201,
    )["data"]
    assert matter["practice_area"] == {"id": area["id"], "name": "Litigation"}
    of_matter = ok(clio.get("/practice_areas", params={"matter_id": matter["id"], "fields": "id"}))
    assert of_matter["data"] == [{"id": area["id"]}]
    in_use = clio.delete(f"/practice_areas/{area['id']}")
    assert in_use.status_code == 422
    unknown = clio.patch(f"/matters/{matter['id']}", json={"data": {"practice_area": {"id": 999}}})
    assert unknown.status_code == 422
    cleared = ok(
        clio.patch(
            f"/matters/{matter['id']}",
            params={"fields": "id,practice_area"},
            json={"data": {"practice_area": None}},
        )
    )["data"]
    assert cleared["practice_area"] is None
    assert clio.delete(f"/practice_areas/{area['id']}").status_code == 204


def test_seeded_areas_are_validated(sandbox: Sandbox, clio: httpx.Client) -> None:
    with sandbox.admin() as admin:
        ok(admin.post("/seed", json={"practice_areas": [{"name": "Tax", "category": "tax"}]}))
        refused = admin.post("/seed", json={"practice_areas": [{"name": "X", "category": "nope"}]})
        assert refused.status_code == 422
    assert [a["name"] for a in ok(clio.get("/practice_areas", params={"fields": "name"}))["data"]] == ["Tax"]

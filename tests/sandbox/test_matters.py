"""Matters: numbering schemes, manual numbering and reset_matter_number, status casing, client rules."""

from __future__ import annotations

from datetime import date

import httpx

from tests.sandbox.conftest import Sandbox, ok

FIELDS = "id,number,display_number,status,open_date,close_date,pending_date,description,client{name}"


def person(clio: httpx.Client, first: str, last: str) -> int:
    body = {"data": {"type": "Person", "first_name": first, "last_name": last}}
    return int(ok(clio.post("/contacts", json=body), 201)["data"]["id"])


def company(clio: httpx.Client, name: str) -> int:
    return int(
        ok(clio.post("/contacts", json={"data": {"type": "Company", "name": name}}), 201)["data"]["id"]
    )


def open_matter(clio: httpx.Client, client_id: int, **extra: object) -> dict[str, object]:
    body = {"data": {"description": "Purchase of 1 High St", "client": {"id": client_id}, **extra}}
    return dict(ok(clio.post("/matters.json", params={"fields": FIELDS}, json=body), 201)["data"])


def settings(sandbox: Sandbox, **changes: object) -> None:
    with sandbox.admin() as admin:
        ok(admin.patch("/settings", json=changes))


def test_default_scheme_numbers_firm_wide_with_the_client_summary_name(
    sandbox: Sandbox, clio: httpx.Client
) -> None:
    smith = person(clio, "Ann", "Smith")
    acme = company(clio, "Acme Ltd")
    first = open_matter(clio, smith)
    second = open_matter(clio, acme)
    assert (first["number"], first["display_number"]) == (1, "00001-Smith")
    assert (second["number"], second["display_number"]) == (2, "00002-Acme Ltd")
    assert first["status"] == "Open"
    assert first["open_date"] == date.today().isoformat()
    assert first["client"] == {"name": "Ann Smith"}


def test_preset_schemes_and_a_changed_start(sandbox: Sandbox, clio: httpx.Client) -> None:
    smith = person(clio, "Ann", "Smith")
    settings(sandbox, matter_numbering="year", next_matter_number=120)
    assert open_matter(clio, smith, open_date="2025-03-04")["display_number"] == "2025-00120"
    settings(sandbox, matter_numbering="year_month")
    assert (
        open_matter(clio, smith, status="pending", pending_date="2024-12-01")["display_number"]
        == "2024-12-00121"
    )
    settings(sandbox, matter_numbering="number")
    assert open_matter(clio, smith)["display_number"] == "00122"


def test_manual_numbering_and_reset_matter_number(sandbox: Sandbox, clio: httpx.Client) -> None:
    smith = person(clio, "Ann", "Smith")
    refused = clio.post(
        "/matters", json={"data": {"description": "x", "client": {"id": smith}, "display_number": "MINE-1"}}
    )
    assert refused.status_code == 422
    assert "manual matter numbering" in refused.json()["error"]["message"]
    settings(sandbox, matter_numbering="manual")
    manual = open_matter(clio, smith, display_number="SMI/001")
    assert manual["display_number"] == "SMI/001"
    settings(sandbox, matter_numbering="default")
    mid = manual["id"]
    kept = ok(
        clio.patch(
            f"/matters/{mid}", params={"fields": "display_number"}, json={"data": {"location": "Leeds"}}
        )
    )
    assert kept["data"]["display_number"] == "SMI/001"
    reset = ok(
        clio.patch(
            f"/matters/{mid}",
            params={"fields": "display_number"},
            json={"data": {"reset_matter_number": True}},
        )
    )
    assert reset["data"]["display_number"] == f"{manual['number']:05d}-Smith"


def test_status_casing_dates_and_filters(clio: httpx.Client) -> None:
    smith = person(clio, "Ann", "Smith")
    mid = open_matter(clio, smith)["id"]
    closed = ok(
        clio.patch(f"/matters/{mid}", params={"fields": FIELDS}, json={"data": {"status": "closed"}})
    )["data"]
    assert closed["status"] == "Closed"
    assert closed["close_date"] == date.today().isoformat()
    capital = clio.patch(f"/matters/{mid}", json={"data": {"status": "Closed"}})  # requests take lower case
    assert capital.status_code == 422
    open_matter(clio, smith)
    assert [m["id"] for m in ok(clio.get("/matters", params={"status": "closed"}))["data"]] == [mid]
    assert len(ok(clio.get("/matters", params={"status": "open,closed"}))["data"]) == 2
    assert len(ok(clio.get("/matters", params={"client_id": str(smith)}))["data"]) == 2


def test_client_is_required_and_must_exist(clio: httpx.Client) -> None:
    missing = clio.post("/matters", json={"data": {"description": "No client"}})
    assert missing.status_code == 422
    assert missing.json() == {"error": {"type": "ValidationError", "message": "Client can't be blank"}}
    ghost = clio.post("/matters", json={"data": {"description": "Ghost", "client": {"id": 424242}}})
    assert ghost.status_code == 422
    assert ok(clio.get("/matters"))["data"] == []
    smith = person(clio, "Ann", "Smith")
    mid = open_matter(clio, smith)["id"]
    in_use = clio.delete(f"/contacts/{smith}")
    assert in_use.status_code == 422
    assert clio.delete(f"/matters/{mid}").status_code == 204
    assert clio.get(f"/matters/{mid}").status_code == 404
    assert clio.delete(f"/contacts/{smith}").status_code == 204

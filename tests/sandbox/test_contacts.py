"""Contacts: Person and Company, nested arrays (create, update by id, _destroy), name rules."""

from __future__ import annotations

import httpx

from tests.sandbox.conftest import ok

FIELDS = "id,etag,name,first_name,last_name,type,initials,primary_email_address,email_addresses,phone_numbers{id,number,name,primary},addresses{id,city,primary}"


def test_a_person_with_nested_items_is_created_updated_and_pruned(clio: httpx.Client) -> None:
    created = ok(
        clio.post(
            "/contacts.json",
            params={"fields": FIELDS},
            json={
                "data": {
                    "type": "Person",
                    "first_name": "Ann",
                    "last_name": "Smith",
                    "email_addresses": [
                        {"name": "Work", "address": "ann@smith.example", "default_email": True},
                        {"name": "Home", "address": "ann@home.example"},
                    ],
                    "phone_numbers": [{"name": "Mobile", "number": "+44 7700 900123"}],
                }
            },
        ),
        201,
    )["data"]
    assert created["name"] == "Ann Smith"
    assert created["initials"] == "AS"
    assert created["primary_email_address"] == "ann@smith.example"
    work, home = created["email_addresses"]
    phone = created["phone_numbers"][0]
    assert phone["primary"] is True
    updated = ok(
        clio.patch(
            f"/contacts/{created['id']}.json",
            params={"fields": FIELDS},
            json={
                "data": {
                    "email_addresses": [
                        {"id": work["id"], "_destroy": True},
                        {"id": home["id"], "address": "ann@new-home.example", "default_email": True},
                        {"name": "Other", "address": "ann@third.example"},
                    ],
                    "addresses": [{"name": "Home", "city": "Leeds"}],
                }
            },
        )
    )["data"]
    assert updated["email_addresses"][0]["id"] == home["id"]
    assert len(updated["email_addresses"]) == 2
    assert updated["primary_email_address"] == "ann@new-home.example"
    assert updated["addresses"][0]["city"] == "Leeds"
    assert updated["etag"] != created["etag"]


def test_name_rules_for_people_and_companies(clio: httpx.Client) -> None:
    split = ok(
        clio.post(
            "/contacts",
            params={"fields": "first_name,last_name,name"},
            json={"data": {"type": "Person", "name": "Jo Bloggs"}},
        ),
        201,
    )
    assert split["data"] == {"first_name": "Jo", "last_name": "Bloggs", "name": "Jo Bloggs"}
    refused = clio.post("/contacts", json={"data": {"type": "Person", "name": "Cher"}})
    assert refused.status_code == 422
    assert refused.json()["error"]["message"] == "At least one of first name or last name must be provided"
    company = ok(
        clio.post(
            "/contacts",
            params={"fields": "name,type"},
            json={"data": {"type": "Company", "name": "Acme Ltd"}},
        ),
        201,
    )
    assert company["data"] == {"name": "Acme Ltd", "type": "Company"}
    assert clio.post("/contacts", json={"data": {"type": "Robot", "name": "R2"}}).status_code == 422


def test_a_bad_fields_parameter_writes_nothing(
    clio: httpx.Client,
) -> None:
    response = clio.post(
        "/contacts", params={"fields": "id,shoe_size"}, json={"data": {"type": "Company", "name": "Acme"}}
    )
    assert response.status_code == 400
    assert response.json() == {"error": {"type": "BadRequestError", "message": "Invalid field: shoe_size"}}
    assert ok(clio.get("/contacts"))["data"] == []

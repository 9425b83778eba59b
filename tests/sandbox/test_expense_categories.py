"""Expense categories: CRUD, filters, validation, the rate as an expense's default price, and the
delete rule for a category in use."""

from __future__ import annotations

import httpx

from tests.sandbox.conftest import ok

FIELDS = "id,etag,name,rate,entry_type,created_at,updated_at"


def _category(clio: httpx.Client, **data: object) -> dict[str, object]:
    body = ok(clio.post("/expense_categories.json", params={"fields": FIELDS}, json={"data": data}), 201)
    result: dict[str, object] = body["data"]
    return result


def test_a_category_is_created_read_updated_and_deleted(clio: httpx.Client) -> None:
    created = _category(clio, name="Courier", rate=12.35)
    assert created["name"] == "Courier"
    assert created["rate"] == 12.35
    assert created["entry_type"] == "unassociated"
    shown = ok(clio.get(f"/expense_categories/{created['id']}", params={"fields": FIELDS}))["data"]
    assert shown == created
    updated = ok(
        clio.patch(
            f"/expense_categories/{created['id']}.json",
            params={"fields": FIELDS},
            json={"data": {"rate": 15, "entry_type": "hard_cost"}},
        )
    )["data"]
    assert (updated["name"], updated["rate"], updated["entry_type"]) == ("Courier", 15, "hard_cost")
    assert updated["etag"] != created["etag"]
    stale = clio.patch(
        f"/expense_categories/{created['id']}",
        headers={"If-Match": str(created["etag"])},
        json={"data": {"name": "Couriers"}},
    )
    assert stale.status_code == 412
    assert clio.delete(f"/expense_categories/{created['id']}.json").status_code == 204
    gone = clio.get(f"/expense_categories/{created['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["type"] == "RecordNotFound"


def test_filters_query_and_order(clio: httpx.Client) -> None:
    _category(clio, name="Photocopies", rate=0.25, entry_type="soft_cost")
    _category(clio, name="Court fees", rate=100, entry_type="hard_cost")
    _category(clio, name="Postage", entry_type="soft_cost")
    soft = ok(clio.get("/expense_categories", params={"entry_type": "soft_cost", "fields": "name,rate"}))
    assert soft["data"] == [{"name": "Photocopies", "rate": 0.25}, {"name": "Postage", "rate": None}]
    found = ok(clio.get("/expense_categories", params={"query": "COURT", "fields": "name"}))
    assert found["data"] == [{"name": "Court fees"}]
    by_name = ok(clio.get("/expense_categories", params={"order": "name(desc)", "fields": "name"}))
    assert [c["name"] for c in by_name["data"]] == ["Postage", "Photocopies", "Court fees"]
    by_rate = ok(clio.get("/expense_categories", params={"order": "rate(asc)", "fields": "name"}))
    assert [c["name"] for c in by_rate["data"]] == ["Photocopies", "Court fees", "Postage"]  # null last
    bad = clio.get("/expense_categories", params={"entry_type": "gold"})
    assert bad.status_code == 400


def test_invalid_categories_are_refused_with_precise_messages(clio: httpx.Client) -> None:
    _category(clio, name="Travel")
    cases = [
        ({"rate": 5}, "Name can't be blank"),
        ({"name": "  "}, "Name can't be blank"),
        ({"name": "Meals", "rate": -1}, "rate must be a number of at least 0"),
        ({"name": "Meals", "rate": "lots"}, "rate must be a number; got 'lots'"),
        ({"name": "Meals", "entry_type": "gold"}, "entry_type must be one of"),
        ({"name": "travel"}, "Name has already been taken"),
    ]
    for data, message in cases:
        response = clio.post("/expense_categories", json={"data": data})
        assert response.status_code == 422, data
        assert response.json()["error"]["message"].startswith(message), response.json()
    bad_fields = clio.post(
        "/expense_categories", params={"fields": "id,colour"}, json={"data": {"name": "X"}}
    )
    assert bad_fields.status_code == 400
    names = [c["name"] for c in ok(clio.get("/expense_categories", params={"fields": "name"}))["data"]]
    assert names == ["Travel"]


def test_the_rate_is_an_expense_default_price_and_a_used_category_cannot_be_deleted(
    clio: httpx.Client,
) -> None:
    category = _category(clio, name="Photocopies", rate=0.25, entry_type="soft_cost")
    expense = ok(
        clio.post(
            "/activities",
            params={"fields": "id,price,quantity,total,expense_category{id,name}"},
            json={
                "data": {
                    "type": "ExpenseEntry",
                    "date": "2026-02-03",
                    "quantity": 130,
                    "expense_category": {"id": category["id"]},
                }
            },
        ),
        201,
    )["data"]
    assert expense["price"] == 0.25
    assert expense["quantity"] == 130
    assert expense["total"] == 32.5
    assert expense["expense_category"] == {"id": category["id"], "name": "Photocopies"}
    refused = clio.delete(f"/expense_categories/{category['id']}")
    assert refused.status_code == 422
    assert refused.json()["error"]["message"] == (
        "This expense category is used by 1 activity and cannot be deleted"
    )
    assert clio.delete(f"/activities/{expense['id']}").status_code == 204
    assert clio.delete(f"/expense_categories/{category['id']}").status_code == 204

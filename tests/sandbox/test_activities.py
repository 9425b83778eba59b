"""Activities: time and expense entries, Decimal-exact totals, rounding, validation, defaults from the
rate hierarchy, filters and ordering, updates, deletes, and hours below X-API-VERSION 4.0.4."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox.conftest import Sandbox, ok

FIELDS = (
    "id,etag,type,date,quantity,quantity_in_hours,rounded_quantity,rounded_quantity_in_hours,price,total,"
    "non_billable,non_billable_total,note,billed,on_bill,matter{id},user{id},bill"
)


def _matter(clio: httpx.Client, description: str = "Smith v Jones") -> int:
    client = ok(clio.post("/contacts", json={"data": {"type": "Company", "name": "Acme Ltd"}}), 201)
    matter = ok(
        clio.post(
            "/matters", json={"data": {"description": description, "client": {"id": client["data"]["id"]}}}
        ),
        201,
    )
    return int(matter["data"]["id"])


def _create(clio: httpx.Client, **data: Any) -> dict[str, Any]:
    body = ok(clio.post("/activities.json", params={"fields": FIELDS}, json={"data": data}), 201)
    result: dict[str, Any] = body["data"]
    return result


def _refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(message), response.json()


def test_a_time_entry_totals_its_hours_at_the_rate(clio: httpx.Client) -> None:
    matter_id = _matter(clio)
    me = ok(clio.get("/users/who_am_i", params={"fields": "id"}))["data"]["id"]
    entry = _create(
        clio,
        type="TimeEntry",
        date="2026-01-05",
        quantity=5400,
        price=250.00,
        note="Drafting the claim",
        matter={"id": matter_id},
    )
    assert entry["quantity"] == 5400
    assert entry["quantity_in_hours"] == 1.5
    assert entry["rounded_quantity"] == 5400
    assert entry["rounded_quantity_in_hours"] == 1.5
    assert entry["price"] == 250.0
    assert entry["total"] == 375.0
    assert entry["non_billable_total"] == 0
    assert entry["matter"] == {"id": matter_id}
    assert entry["user"] == {"id": me}  # the token's user
    assert (entry["billed"], entry["on_bill"], entry["bill"]) == (False, False, None)
    shown = ok(clio.get(f"/activities/{entry['id']}.json", params={"fields": FIELDS}))["data"]
    assert shown == entry
    # Without a price, a TimeEntry takes the user's rate (the sandbox user's is 250.00).
    defaulted = _create(clio, type="TimeEntry", date="2026-01-05", quantity=3600)
    assert (defaulted["price"], defaulted["total"]) == (250.0, 250.0)


def test_time_rounds_up_to_six_minutes_and_the_rounded_time_makes_the_total(
    clio: httpx.Client, sandbox: Sandbox
) -> None:
    twenty_minutes = _create(clio, type="TimeEntry", date="2026-01-05", quantity=1200, price=250)
    assert twenty_minutes["quantity"] == 1200
    assert twenty_minutes["quantity_in_hours"] == 0.3333
    assert twenty_minutes["rounded_quantity"] == 1440
    assert twenty_minutes["rounded_quantity_in_hours"] == 0.4
    assert twenty_minutes["total"] == 100.0
    one_minute_over = _create(clio, type="TimeEntry", date="2026-01-05", quantity=3660, price=250)
    assert (one_minute_over["rounded_quantity"], one_minute_over["total"]) == (3960, 275.0)
    # The account's increment can be turned off from a seed document: then cents round half-up.
    with sandbox.admin() as admin:
        admin.post("/seed", json={"settings": {"activity_rounding_seconds": 0}}).raise_for_status()
    exact = _create(clio, type="TimeEntry", date="2026-01-05", quantity=1200, price=250)
    assert (exact["rounded_quantity"], exact["total"]) == (1200, 83.33)


def test_expense_totals_are_decimal_exact(clio: httpx.Client) -> None:
    three = _create(clio, type="ExpenseEntry", date="2026-01-06", quantity=3, price=12.35, note="Taxis")
    assert (three["quantity"], three["price"], three["total"]) == (3, 12.35, 37.05)
    assert three["quantity_in_hours"] is None
    assert three["rounded_quantity"] is None
    tenths = _create(clio, type="ExpenseEntry", date="2026-01-06", quantity=3, price=0.1)
    assert tenths["total"] == 0.3  # 0.1 * 3 in floats would be 0.30000000000000004
    one = _create(clio, type="ExpenseEntry", date="2026-01-06", price=49.99)
    assert (one["quantity"], one["total"]) == (1, 49.99)
    miles = _create(clio, type="SoftCostEntry", date="2026-01-06", quantity=12.5, price=0.45)
    assert miles["total"] == 5.63  # 5.625 rounds half-up


def test_non_billable_amounts_move_to_non_billable_total(clio: httpx.Client) -> None:
    entry = _create(clio, type="TimeEntry", date="2026-01-05", quantity=5400, price=250, non_billable=True)
    assert (entry["total"], entry["non_billable_total"], entry["non_billable"]) == (0, 375.0, True)
    billable = ok(
        clio.patch(
            f"/activities/{entry['id']}", params={"fields": FIELDS}, json={"data": {"non_billable": False}}
        )
    )["data"]
    assert (billable["total"], billable["non_billable_total"]) == (375.0, 0)


def test_invalid_activities_are_refused_and_nothing_is_written(clio: httpx.Client) -> None:
    base = {"type": "TimeEntry", "date": "2026-01-05"}
    _refused(
        clio.post("/activities", json={"data": {**base, "quantity": -60}}), "quantity must not be negative"
    )
    _refused(
        clio.post("/activities", json={"data": {**base, "quantity": 90.5}}),
        "quantity of a TimeEntry is a whole number of seconds",
    )
    _refused(
        clio.post("/activities", json={"data": {**base, "quantity": "an hour"}}), "quantity must be a number"
    )
    _refused(clio.post("/activities", json={"data": {"date": "2026-01-05"}}), "type can't be blank")
    _refused(
        clio.post("/activities", json={"data": {"type": "Meeting", "date": "2026-01-05"}}),
        "type must be one of",
    )
    _refused(clio.post("/activities", json={"data": {"type": "TimeEntry"}}), "date can't be blank")
    _refused(clio.post("/activities", json={"data": {**base, "date": "05/01/2026"}}), "date must be a date")
    _refused(
        clio.post("/activities", json={"data": {**base, "price": -1}}), "price must be a number of at least 0"
    )
    _refused(
        clio.post("/activities", json={"data": {**base, "matter": {"id": 999}}}),
        "Matter with id 999 does not exist",
    )
    _refused(
        clio.post("/activities", json={"data": {**base, "user": {"id": 999}}}),
        "User with id 999 does not exist",
    )
    category = ok(clio.post("/expense_categories", json={"data": {"name": "Fees"}}), 201)["data"]["id"]
    _refused(
        clio.post("/activities", json={"data": {**base, "expense_category": {"id": category}}}),
        "expense_category is only valid for expense entries",
    )
    _refused(
        clio.post("/activities", json={"data": {"type": "ExpenseEntry", "date": "2026-01-05"}}),
        "price can't be blank for an ExpenseEntry",
    )
    _refused(
        clio.post(
            "/activities",
            json={
                "data": {"type": "ExpenseEntry", "date": "2026-01-05", "expense_category": {"id": category}}
            },
        ),
        "price can't be blank",  # the category has no rate
    )
    _refused(clio.post("/activities", json={"data": {**base, "start_timer": True}}), "start_timer")
    bad_fields = clio.post(
        "/activities", params={"fields": "id,mood"}, json={"data": {**base, "quantity": 60}}
    )
    assert bad_fields.status_code == 400
    assert ok(clio.get("/activities"))["data"] == []


def test_filters_and_ordering(clio: httpx.Client, sandbox: Sandbox) -> None:
    with sandbox.admin() as admin:
        admin.post("/seed", json={"users": [{"name": "Bea Baker", "rate": 300}]}).raise_for_status()
    bea = next(
        u["id"]
        for u in ok(clio.get("/users", params={"fields": "id,name"}))["data"]
        if u["name"] == "Bea Baker"
    )
    first, second = _matter(clio, "First"), _matter(clio, "Second")
    category = ok(clio.post("/expense_categories", json={"data": {"name": "Fees", "rate": 40}}), 201)["data"][
        "id"
    ]
    a = _create(
        clio,
        type="TimeEntry",
        date="2026-01-05",
        quantity=3600,
        note="Call with client",
        matter={"id": first},
    )
    b = _create(
        clio,
        type="TimeEntry",
        date="2026-01-07",
        quantity=7200,
        note="Research",
        matter={"id": second},
        user={"id": bea},
    )
    c = _create(
        clio,
        type="ExpenseEntry",
        date="2026-01-06",
        expense_category={"id": category},
        note="Court filing fee",
        matter={"id": first},
    )
    d = _create(clio, type="TimeEntry", date="2026-01-09", quantity=600, non_billable=True, note="Admin")

    def ids(**params: Any) -> list[int]:
        return [r["id"] for r in ok(clio.get("/activities", params={"fields": "id", **params}))["data"]]

    assert ids(type="TimeEntry") == [a["id"], b["id"], d["id"]]
    assert ids(type="ExpenseEntry") == [c["id"]]
    assert ids(type="HardCostEntry") == []
    assert ids(matter_id=first) == [a["id"], c["id"]]
    assert ids(matter_id="null") == [d["id"]]
    assert ids(user_id=bea) == [b["id"]]
    assert ids(expense_category_id=category) == [c["id"]]
    assert ids(start_date="2026-01-06", end_date="2026-01-07") == [b["id"], c["id"]]
    assert ids(status="non_billable") == [d["id"]]
    assert ids(status="billable") == [a["id"], b["id"], c["id"]]
    assert ids(status="unbilled") == [a["id"], b["id"], c["id"]]
    assert ids(status="billed") == []
    assert ids(query="COURT") == [c["id"]]
    assert ids(order="date(asc)") == [a["id"], c["id"], b["id"], d["id"]]
    assert ids(order="date(desc)") == [d["id"], b["id"], c["id"], a["id"]]
    # totals: a 250, b 600 (Bea's rate 300 x 2h), c 40 (the category's rate), d 0 (non-billable)
    assert ids(order="total(desc)") == [b["id"], a["id"], c["id"], d["id"]]
    page = ok(clio.get("/activities", params={"fields": "id", "order": "total(asc)", "limit": 2}))
    assert [r["id"] for r in page["data"]] == [d["id"], c["id"]]
    assert "offset=2" in page["meta"]["paging"]["next"]
    for params in (
        {"status": "lost"},
        {"type": "Meeting"},
        {"matter_id": "one"},
        {"start_date": "soon"},
        {"order": "mood(asc)"},
    ):
        assert clio.get("/activities", params=params).status_code == 400, params


def test_updates_recompute_and_reset_the_price_when_the_user_changes(
    clio: httpx.Client, sandbox: Sandbox
) -> None:
    with sandbox.admin() as admin:
        admin.post(
            "/seed", json={"users": [{"id": 7, "name": "Bea Baker", "rate": "300.00"}]}
        ).raise_for_status()
    entry = _create(clio, type="TimeEntry", date="2026-01-05", quantity=3600)
    assert entry["total"] == 250.0
    longer = ok(
        clio.patch(
            f"/activities/{entry['id']}.json",
            params={"fields": FIELDS},
            json={"data": {"quantity": 5400, "note": "Longer call"}},
        )
    )["data"]
    assert (longer["quantity"], longer["price"], longer["total"], longer["note"]) == (
        5400,
        250.0,
        375.0,
        "Longer call",
    )
    assert longer["etag"] != entry["etag"]
    moved = ok(
        clio.patch(
            f"/activities/{entry['id']}", params={"fields": FIELDS}, json={"data": {"user": {"id": 7}}}
        )
    )["data"]
    assert (moved["user"], moved["price"], moved["total"]) == ({"id": 7}, 300.0, 450.0)
    kept = ok(
        clio.patch(
            f"/activities/{entry['id']}",
            params={"fields": FIELDS},
            json={"data": {"user": {"id": 1}, "price": 310}},
        )
    )["data"]
    assert (kept["user"], kept["price"], kept["total"]) == ({"id": 1}, 310.0, 465.0)
    unchanged_rate = ok(
        clio.patch(
            f"/activities/{entry['id']}", params={"fields": FIELDS}, json={"data": {"date": "2026-01-06"}}
        )
    )["data"]
    assert (unchanged_rate["date"], unchanged_rate["price"]) == ("2026-01-06", 310.0)
    _refused(
        clio.patch(f"/activities/{entry['id']}", json={"data": {"type": "ExpenseEntry"}}),
        "type cannot be changed (TimeEntry to ExpenseEntry)",
    )
    _refused(
        clio.patch(f"/activities/{entry['id']}", json={"data": {"quantity": -1}}),
        "quantity must not be negative",
    )
    stale = clio.patch(
        f"/activities/{entry['id']}", headers={"If-Match": entry["etag"]}, json={"data": {"note": "late"}}
    )
    assert stale.status_code == 412
    assert ok(clio.get(f"/activities/{entry['id']}", params={"fields": "note"}))["data"] == {
        "note": "Longer call"
    }


def test_expense_category_change_takes_the_new_rate(clio: httpx.Client) -> None:
    cheap = ok(clio.post("/expense_categories", json={"data": {"name": "Copies", "rate": 0.1}}), 201)["data"][
        "id"
    ]
    colour = ok(clio.post("/expense_categories", json={"data": {"name": "Colour", "rate": 0.5}}), 201)[
        "data"
    ]["id"]
    entry = _create(clio, type="ExpenseEntry", date="2026-01-05", quantity=40, expense_category={"id": cheap})
    assert (entry["price"], entry["total"]) == (0.1, 4.0)
    changed = ok(
        clio.patch(
            f"/activities/{entry['id']}",
            params={"fields": FIELDS},
            json={"data": {"expense_category": {"id": colour}}},
        )
    )["data"]
    assert (changed["price"], changed["total"]) == (0.5, 20.0)


def test_delete(clio: httpx.Client) -> None:
    entry = _create(clio, type="TimeEntry", date="2026-01-05", quantity=60)
    assert clio.delete(f"/activities/{entry['id']}.json").status_code == 204
    assert clio.get(f"/activities/{entry['id']}").status_code == 404
    assert clio.delete(f"/activities/{entry['id']}").status_code == 404


def test_before_4_0_4_time_is_in_hours(clio: httpx.Client) -> None:
    old = {"X-API-VERSION": "4.0.3"}
    created = ok(
        clio.post(
            "/activities",
            headers=old,
            params={"fields": "id,quantity,rounded_quantity,quantity_in_hours,total"},
            json={"data": {"type": "TimeEntry", "date": "2026-01-05", "quantity": 1.5, "price": 200}},
        ),
        201,
    )["data"]
    assert created["quantity"] == 1.5
    assert created["rounded_quantity"] == 1.5
    assert created["total"] == 300.0
    current = ok(clio.get(f"/activities/{created['id']}", params={"fields": "quantity,rounded_quantity"}))
    assert current["data"] == {"quantity": 5400, "rounded_quantity": 5400}
    listed = ok(clio.get("/activities", headers=old, params={"fields": "quantity"}))
    assert listed["data"] == [{"quantity": 1.5}]
    expense = ok(
        clio.post(
            "/activities",
            headers=old,
            params={"fields": "quantity,total"},
            json={"data": {"type": "ExpenseEntry", "date": "2026-01-05", "quantity": 2, "price": 10}},
        ),
        201,
    )["data"]
    assert expense == {"quantity": 2, "total": 20.0}  # expenses count units in every version

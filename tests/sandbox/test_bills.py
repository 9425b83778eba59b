"""Bills: seeded through the admin API (Clio has no create endpoint), read, filtered, moved between
states only along the allowed transitions, deleted to ``deleted`` or ``void``, and the activities on
them locked until the bill is voided or deleted."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox.conftest import Sandbox, ok

FIELDS = (
    "id,etag,number,type,kind,state,issued_at,due_at,sub_total,tax_sum,total,paid,paid_at,balance,due,"
    "available_state_transitions,can_update,subject,memo,purchase_order,client{id,name},matters{id,description}"
)
ACTIVITY_FIELDS = "id,billed,on_bill,bill{id,number,state}"


def _contact(clio: httpx.Client, name: str) -> int:
    return int(
        ok(clio.post("/contacts", json={"data": {"type": "Company", "name": name}}), 201)["data"]["id"]
    )


def _matter(clio: httpx.Client, client_id: int, description: str) -> int:
    body = {"data": {"description": description, "client": {"id": client_id}}}
    return int(ok(clio.post("/matters", json=body), 201)["data"]["id"])


def _activity(clio: httpx.Client, matter_id: int, **data: Any) -> int:
    body = {"data": {"date": "2026-01-05", "matter": {"id": matter_id}, **data}}
    return int(ok(clio.post("/activities", json=body), 201)["data"]["id"])


def _seed(sandbox: Sandbox, *bills: dict[str, Any]) -> httpx.Response:
    with sandbox.admin() as admin:
        return admin.post("/seed", json={"bills": list(bills)})


def _bill(clio: httpx.Client, bill_id: int) -> dict[str, Any]:
    result: dict[str, Any] = ok(clio.get(f"/bills/{bill_id}.json", params={"fields": FIELDS}))["data"]
    return result


def _activity_state(clio: httpx.Client, activity_id: int) -> dict[str, Any]:
    result: dict[str, Any] = ok(clio.get(f"/activities/{activity_id}", params={"fields": ACTIVITY_FIELDS}))[
        "data"
    ]
    return result


def _refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(message), response.json()


def _setup(clio: httpx.Client) -> tuple[int, int, list[int]]:
    """A client, its matter, and three activities on it: 375.00 + 37.05 + 50.00 (non-billable)."""
    client = _contact(clio, "Acme Ltd")
    matter = _matter(clio, client, "Acme v Beta")
    activities = [
        _activity(clio, matter, type="TimeEntry", quantity=5400, price=250),
        _activity(clio, matter, type="ExpenseEntry", quantity=3, price=12.35),
        _activity(clio, matter, type="TimeEntry", quantity=720, price=250, non_billable=True),
    ]
    return client, matter, activities


def test_a_seeded_bill_is_read_with_computed_amounts_and_bills_its_activities(
    clio: httpx.Client, sandbox: Sandbox
) -> None:
    client, matter, activities = _setup(clio)
    seeded = _seed(
        sandbox,
        {
            "id": 1,
            "number": "1001",
            "matter_ids": [matter],
            "activity_ids": activities,
            "issued_at": "2026-01-31",
            "due_at": "2026-03-02",
            "state": "awaiting_payment",
            "paid": "0",
        },
    )
    assert seeded.status_code == 200, seeded.text
    assert seeded.json() == {"loaded": {"bills": 1}}
    bill = _bill(clio, 1)
    assert bill["number"] == "1001"
    assert (bill["type"], bill["kind"], bill["state"]) == ("MatterBill", "revenue_kind", "awaiting_payment")
    assert (bill["issued_at"], bill["due_at"]) == ("2026-01-31", "2026-03-02")
    assert (bill["sub_total"], bill["tax_sum"], bill["total"], bill["due"]) == (412.05, 0, 412.05, 412.05)
    assert (bill["paid"], bill["balance"], bill["paid_at"]) == (0, 412.05, None)
    assert bill["available_state_transitions"] == ["paid", "void"]
    assert bill["can_update"] is False
    assert bill["client"] == {"id": client, "name": "Acme Ltd"}
    assert bill["matters"] == [{"id": matter, "description": "Acme v Beta"}]
    for activity_id in activities:
        assert _activity_state(clio, activity_id) == {
            "id": activity_id,
            "billed": True,
            "on_bill": True,
            "bill": {"id": 1, "number": "1001", "state": "awaiting_payment"},
        }
    billed = ok(clio.get("/activities", params={"status": "billed", "fields": "id"}))["data"]
    assert [a["id"] for a in billed] == activities
    # A draft bill puts its activities on the bill, not yet billed.
    more = _activity(clio, matter, type="TimeEntry", quantity=3600, price=100)
    assert _seed(sandbox, {"id": 2, "activity_ids": [more]}).status_code == 200
    draft = _bill(clio, 2)
    assert (draft["number"], draft["state"], draft["total"], draft["can_update"]) == (
        "2",
        "draft",
        100.0,
        True,
    )
    assert draft["matters"] == [{"id": matter, "description": "Acme v Beta"}]  # from its activities
    assert draft["available_state_transitions"] == ["awaiting_approval", "awaiting_payment", "deleted"]
    assert _activity_state(clio, more)["on_bill"] is True
    assert _activity_state(clio, more)["billed"] is False
    drafts = ok(clio.get("/activities", params={"status": "draft", "fields": "id"}))["data"]
    assert [a["id"] for a in drafts] == [more]


def test_seed_records_are_validated(clio: httpx.Client, sandbox: Sandbox) -> None:
    _, matter, activities = _setup(clio)
    assert _seed(sandbox, {"id": 1, "number": "1", "activity_ids": activities[:1]}).status_code == 200
    cases = [
        ({"activity_ids": [999]}, "activity 999 does not exist"),
        ({"activity_ids": activities[:1]}, f"activity {activities[0]} is already on bill 1"),
        ({"matter_ids": [999]}, "matter 999 does not exist"),
        ({"matter_ids": [matter], "state": "sent"}, "state must be one of"),
        ({"number": "1", "matter_ids": [matter]}, "bill number '1' is already taken"),
        ({"activity_ids": activities[1:2], "paid": "100"}, "paid (100) is more than the total (37.05)"),
        ({"matter_ids": [matter], "issued_at": "2026-02-01", "due_at": "2026-01-01"}, "due_at (2026-01-01)"),
        ({"activity_ids": activities[1:2], "total": "5"}, "give activity_ids or total"),
        ({}, "a bill needs matter_ids"),
    ]
    for record, message in cases:
        response = _seed(sandbox, record)
        assert response.status_code == 422, record
        assert message in response.json()["detail"], response.json()


def test_list_filters(clio: httpx.Client, sandbox: Sandbox) -> None:
    acme, beta = _contact(clio, "Acme Ltd"), _contact(clio, "Beta plc")
    acme_matter, beta_matter = _matter(clio, acme, "Acme matter"), _matter(clio, beta, "Beta matter")
    seeded = _seed(
        sandbox,
        {"id": 1, "number": "A-1", "matter_ids": [acme_matter], "total": "100", "state": "awaiting_payment",
         "issued_at": "2020-01-01", "due_at": "2020-01-31"},
        {"id": 2, "number": "A-2", "matter_ids": [acme_matter], "total": "200", "state": "paid",
         "issued_at": "2020-02-01", "due_at": "2020-03-01"},
        {"id": 3, "number": "B-1", "matter_ids": [beta_matter], "total": "300", "state": "draft",
         "issued_at": "2020-03-01", "due_at": "2099-01-01", "kind": "trust_kind"},
        {"id": 4, "number": "B-2", "matter_ids": [beta_matter], "total": "50", "state": "deleted",
         "issued_at": "2020-03-05"},
    )  # fmt: skip
    assert seeded.status_code == 200, seeded.text

    def ids(**params: Any) -> list[int]:
        return [b["id"] for b in ok(clio.get("/bills", params={"fields": "id", **params}))["data"]]

    assert ids() == [1, 2, 3]  # deleted bills only on request
    assert ids(state="deleted") == [4]
    assert ids(state="paid") == [2]
    assert ids(matter_id=acme_matter) == [1, 2]
    assert ids(client_id=beta) == [3]
    assert ids(issued_after="2020-01-01") == [2, 3]
    assert ids(issued_before="2020-02-15") == [1, 2]
    assert ids(overdue_only="true") == [1]
    assert ids(status="overdue") == [1]
    assert ids(type="trust") == [3]
    assert ids(type="revenue") == [1, 2]
    assert ids(query="B-") == [3]
    assert ids(order="number(desc)") == [3, 2, 1]
    assert ids(order="balance(desc)") == [3, 1, 2]  # 300, 100, 0 (paid)
    paid = _bill(clio, 2)
    assert (paid["paid"], paid["balance"], paid["available_state_transitions"]) == (200.0, 0, [])
    assert paid["paid_at"] is not None
    assert _bill(clio, 4)["state"] == "deleted"  # still readable by id
    for params in ({"state": "sent"}, {"type": "both"}, {"matter_id": "x"}, {"issued_after": "soon"}):
        assert clio.get("/bills", params=params).status_code == 400, params


def test_state_moves_only_along_the_allowed_transitions(clio: httpx.Client, sandbox: Sandbox) -> None:
    _, _, activities = _setup(clio)
    assert _seed(sandbox, {"id": 1, "number": "1001", "activity_ids": activities}).status_code == 200
    refused = clio.patch("/bills/1", json={"data": {"state": "paid"}})
    _refused(
        refused, "A draft bill cannot move to paid; allowed: awaiting_approval, awaiting_payment, deleted"
    )
    bill = ok(
        clio.patch("/bills/1", params={"fields": FIELDS}, json={"data": {"state": "awaiting_approval"}})
    )["data"]
    assert bill["available_state_transitions"] == ["awaiting_payment", "deleted"]
    assert _activity_state(clio, activities[0])["billed"] is False
    _refused(
        clio.patch("/bills/1", json={"data": {"state": "void"}}),
        "An awaiting_approval bill cannot move to void; allowed: awaiting_payment, deleted",
    )
    _refused(clio.patch("/bills/1", json={"data": {"state": "unpaid"}}), "state must be one of")
    bill = ok(
        clio.patch("/bills/1.json", params={"fields": FIELDS}, json={"data": {"state": "awaiting_payment"}})
    )["data"]
    assert bill["state"] == "awaiting_payment"
    assert _activity_state(clio, activities[0])["billed"] is True
    paid = ok(clio.patch("/bills/1", params={"fields": FIELDS}, json={"data": {"state": "paid"}}))["data"]
    assert (paid["state"], paid["paid"], paid["balance"], paid["available_state_transitions"]) == (
        "paid",
        412.05,
        0,
        [],
    )
    assert paid["paid_at"] is not None
    _refused(clio.delete("/bills/1"), "This bill has payments (412.05 paid) and cannot be deleted or voided")
    _refused(
        clio.patch("/bills/1", json={"data": {"state": "void"}}),
        "A paid bill cannot move to void; allowed: none",
    )


def test_other_fields_are_updated_and_validated(clio: httpx.Client, sandbox: Sandbox) -> None:
    _, matter, activities = _setup(clio)
    seeded = _seed(
        sandbox,
        {"id": 1, "number": "1001", "activity_ids": activities, "issued_at": "2026-01-31"},
        {"id": 2, "number": "1002", "matter_ids": [matter], "total": "10"},
    )
    assert seeded.status_code == 200, seeded.text
    before = _bill(clio, 1)
    assert before["due_at"] == "2026-03-02"  # 30 days after issue by default
    updated = ok(
        clio.patch(
            "/bills/1",
            params={"fields": FIELDS},
            json={
                "data": {
                    "number": "INV-1001",
                    "subject": "January work",
                    "memo": "Thank you",
                    "purchase_order": "PO-7",
                    "issued_at": "2026-02-01",
                    "due_at": "2026-02-28",
                    "tax_rate": 10,
                }
            },
        )
    )["data"]
    assert updated["number"] == "INV-1001"
    assert (updated["subject"], updated["memo"], updated["purchase_order"]) == (
        "January work",
        "Thank you",
        "PO-7",
    )
    assert (updated["issued_at"], updated["due_at"]) == ("2026-02-01", "2026-02-28")
    assert (updated["sub_total"], updated["tax_sum"], updated["total"], updated["balance"]) == (
        412.05,
        41.21,
        453.26,
        453.26,
    )
    assert updated["etag"] != before["etag"]
    _refused(clio.patch("/bills/1", json={"data": {"number": "1002"}}), "number has already been taken")
    _refused(
        clio.patch("/bills/1", json={"data": {"due_at": "2026-01-01"}}),
        "due_at (2026-01-01) must not be before",
    )
    _refused(
        clio.patch("/bills/1", json={"data": {"discount": {"rate": 5, "type": "percentage"}}}), "discount"
    )
    stale = clio.patch("/bills/1", headers={"If-Match": before["etag"]}, json={"data": {"memo": "x"}})
    assert stale.status_code == 412
    bad_fields = clio.patch("/bills/1", params={"fields": "id,colour"}, json={"data": {"memo": "x"}})
    assert bad_fields.status_code == 400
    assert _bill(clio, 1)["memo"] == "Thank you"
    assert clio.get("/bills/99").status_code == 404


def test_delete_voids_an_unpaid_bill_and_releases_its_locked_activities(
    clio: httpx.Client, sandbox: Sandbox
) -> None:
    _, _, activities = _setup(clio)
    seeded = _seed(
        sandbox, {"id": 1, "number": "1001", "activity_ids": activities, "state": "awaiting_payment"}
    )
    assert seeded.status_code == 200, seeded.text
    locked = clio.patch(f"/activities/{activities[0]}", json={"data": {"note": "edited"}})
    _refused(locked, "This activity is on bill 1001 (awaiting_payment) and cannot be changed; void or delete")
    _refused(
        clio.delete(f"/activities/{activities[1]}"),
        "This activity is on bill 1001 (awaiting_payment) and cannot be deleted",
    )
    etag_on_bill = ok(clio.get(f"/activities/{activities[0]}", params={"fields": "etag"}))["data"]["etag"]
    assert clio.delete("/bills/1.json").status_code == 204
    bill = _bill(clio, 1)
    assert (bill["state"], bill["balance"], bill["total"], bill["available_state_transitions"]) == (
        "void",
        0,
        412.05,
        [],
    )
    assert ok(clio.get("/bills", params={"fields": "id,state"}))["data"] == [{"id": 1, "state": "void"}]
    released = _activity_state(clio, activities[0])
    assert released == {"id": activities[0], "billed": False, "on_bill": False, "bill": None}
    etag = ok(clio.get(f"/activities/{activities[0]}", params={"fields": "etag"}))["data"]["etag"]
    assert etag != etag_on_bill  # released: a change a sync sees
    assert ok(clio.get("/activities", params={"status": "unbilled", "fields": "id"}))["data"] == [
        {"id": activities[0]},
        {"id": activities[1]},
    ]
    edited = ok(
        clio.patch(
            f"/activities/{activities[0]}", params={"fields": "note"}, json={"data": {"note": "edited"}}
        )
    )
    assert edited["data"] == {"note": "edited"}
    _refused(
        clio.delete("/bills/1"),
        "Only draft, awaiting_approval and awaiting_payment bills can be deleted or voided; this bill is void",
    )
    _refused(clio.patch("/bills/1", json={"data": {"memo": "x"}}), "This bill is void and cannot be changed")
    # The released activities can go on a new bill.
    assert _seed(sandbox, {"id": 2, "number": "1002", "activity_ids": activities[:2]}).status_code == 200
    assert _activity_state(clio, activities[0])["bill"] == {"id": 2, "number": "1002", "state": "draft"}


def test_delete_moves_drafts_to_deleted_and_refuses_bills_with_payments(
    clio: httpx.Client, sandbox: Sandbox
) -> None:
    _, matter, activities = _setup(clio)
    seeded = _seed(
        sandbox,
        {"id": 1, "number": "1001", "activity_ids": activities[:1], "state": "draft"},
        {"id": 2, "number": "1002", "activity_ids": activities[1:2], "state": "awaiting_approval"},
        {"id": 3, "number": "1003", "matter_ids": [matter], "total": "375", "paid": "100",
         "state": "awaiting_payment"},
    )  # fmt: skip
    assert seeded.status_code == 200, seeded.text
    _refused(
        clio.patch(f"/activities/{activities[0]}", json={"data": {"note": "x"}}),
        "This activity is on bill 1001 (draft)",
    )
    assert clio.delete("/bills/1").status_code == 204
    assert clio.delete("/bills/2").status_code == 204
    assert (_bill(clio, 1)["state"], _bill(clio, 2)["state"]) == ("deleted", "deleted")
    assert _activity_state(clio, activities[0])["bill"] is None
    assert _activity_state(clio, activities[1])["on_bill"] is False
    partly_paid = _bill(clio, 3)
    assert (partly_paid["paid"], partly_paid["balance"]) == (100.0, 275.0)
    assert partly_paid["available_state_transitions"] == ["paid"]
    _refused(clio.delete("/bills/3"), "This bill has payments (100 paid)")
    assert _bill(clio, 3)["state"] == "awaiting_payment"
    assert ok(clio.get("/bills", params={"fields": "id"}))["data"] == [{"id": 3}]


def test_a_whole_seed_document_loads_activities_categories_and_bills(
    clio: httpx.Client, sandbox: Sandbox
) -> None:
    document = {
        "settings": {"activity_rounding_seconds": 0},
        "contacts": [{"id": 10, "type": "Company", "name": "Acme Ltd"}],
        "matters": [{"id": 20, "description": "Acme v Beta", "client_id": 10, "status": "Open"}],
        "activities": [
            {"id": 30, "type": "TimeEntry", "date": "2026-01-05", "quantity": 1200, "matter_id": 20},
            {"id": 31, "type": "ExpenseEntry", "date": "2026-01-06", "quantity": 3, "price": "12.35",
             "matter_id": 20, "expense_category_id": 40},
        ],
        "expense_categories": [{"id": 40, "name": "Taxis", "rate": "12.35"}],
        "bills": [{"id": 50, "number": "1001", "activity_ids": [30, 31], "state": "awaiting_payment"}],
    }  # fmt: skip
    with sandbox.admin() as admin:
        loaded = admin.post("/seed", json=document)
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["loaded"] == {
            "contacts": 1,
            "matters": 1,
            "activities": 2,
            "expense_categories": 1,
            "bills": 1,
        }
        refused = admin.post(
            "/seed", json={"activities": [{"type": "TimeEntry", "date": "2026-01-05", "quantity": -5}]}
        )
        assert refused.status_code == 422
        assert "quantity must be a number of at least 0" in refused.json()["detail"]
    time = ok(clio.get("/activities/30", params={"fields": "price,total,user{id},billed,bill{id}"}))["data"]
    assert time == {"price": 250.0, "total": 83.33, "user": {"id": 1}, "billed": True, "bill": {"id": 50}}
    expense = ok(clio.get("/activities/31", params={"fields": "total,expense_category{id,name,rate}"}))[
        "data"
    ]
    assert expense == {"total": 37.05, "expense_category": {"id": 40, "name": "Taxis", "rate": 12.35}}
    bill = _bill(clio, 50)
    assert (bill["total"], bill["balance"], bill["client"]) == (
        120.38,
        120.38,
        {"id": 10, "name": "Acme Ltd"},
    )
    assert bill["matters"] == [{"id": 20, "description": "Acme v Beta"}]
    # Ids after seeded ones continue past them.
    created = ok(clio.post("/expense_categories", json={"data": {"name": "Meals"}}), 201)["data"]["id"]
    assert created == 41

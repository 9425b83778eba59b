"""Activities over HTTP: money, validation, the approval states, locking, deletion, history, lists, totals."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from casebridge.auth.service import create_token
from casebridge.db.session import unit_of_work
from casebridge.kit.context import Role
from tests.conftest import Backend, LiveServer, MakeClient
from tests.factories import create_contact, create_matter, create_user

URL = "/api/v1/activities"


def gbp(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "GBP"}


def time_body(matter: dict[str, Any], user: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "time",
        "matter_id": matter["id"],
        "date": "2026-11-02",
        "user_id": user["id"],
        "description": "Drafting the contract",
        "duration_seconds": 5400,
        "rate": gbp("250.00"),
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def expense_body(matter: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "expense",
        "matter_id": matter["id"],
        "date": "2026-11-03",
        "amount": gbp("42.50"),
        "category": "search fees",
        "description": "Local authority search",
    }
    body.update(overrides)
    return body


def post(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post(URL, json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def errors(r: httpx.Response) -> dict[str, dict[str, str]]:
    assert r.status_code == 422, r.text
    return {e["field"]: e for e in r.json()["errors"]}


@pytest.fixture
def matter(api: httpx.Client) -> dict[str, Any]:
    return create_matter(api)


@pytest.fixture
def user(api: httpx.Client) -> dict[str, Any]:
    return create_user(api)


def test_create_hourly_flat_and_expense_with_totals(
    api: httpx.Client, matter: dict[str, Any], user: dict[str, Any]
) -> None:
    supplier = create_contact(
        api, kind="company", company_name="Searches Ltd", first_name=None, last_name=None
    )
    hourly = post(api, time_body(matter, user))
    assert (hourly["kind"], hourly["state"], hourly["billing_method"]) == ("time", "draft", "hourly")
    assert hourly["total"] == gbp("375.00")
    assert hourly["rate"] == gbp("250.00")
    assert (hourly["duration_seconds"], hourly["flat_fee"], hourly["amount"]) == (5400, None, None)
    assert hourly["user_id"] == user["id"]
    assert hourly["description"] == "Drafting the contract"
    flat = post(api, time_body(matter, user, duration_seconds=..., rate=..., flat_fee=gbp("150")))
    assert (flat["billing_method"], flat["total"], flat["flat_fee"]) == ("flat", gbp("150.00"), gbp("150.00"))
    assert flat["duration_seconds"] is None
    expense = post(api, expense_body(matter, supplier_id=supplier["id"]))
    assert (expense["kind"], expense["billing_method"], expense["total"]) == ("expense", None, gbp("42.50"))
    assert (expense["supplier_id"], expense["category"]) == (supplier["id"], "search fees")

    got = api.get(f"{URL}/{hourly['id']}")
    assert got.status_code == 200
    assert got.headers["etag"] == hourly["etag"]
    assert got.json() == hourly
    assert api.get(f"{URL}/{hourly['id']}", headers={"If-None-Match": hourly["etag"]}).status_code == 304

    totals = api.get(f"{URL}/totals", params={"matter_id": matter["id"]}).json()["totals"]
    assert totals == [
        {
            "currency": "GBP",
            "time": gbp("525.00"),
            "expenses": gbp("42.50"),
            "total": gbp("567.50"),
            "duration_seconds": 5400,
            "count": 3,
        }
    ]


@pytest.mark.parametrize(
    ("duration", "rate", "currency", "total"),
    [
        (1, "100", "GBP", "0.03"),  # 0.0277... rounds to the penny
        (18, "1", "USD", "0.01"),  # exactly 0.005: half up
        (3600, "123.4567", "GBP", "123.46"),  # a 4-place rate, total to the penny
        (1800, "1001", "JPY", "501"),  # 500.5 yen: half up, no minor unit
        (1, "1000", "JPY", "0"),
        (60, "10.001", "KWD", "0.167"),  # three places for dinars
        (0, "250", "GBP", "0.00"),
    ],
)
def test_rounding(
    api: httpx.Client,
    matter: dict[str, Any],
    user: dict[str, Any],
    duration: int,
    rate: str,
    currency: str,
    total: str,
) -> None:
    out = post(
        api, time_body(matter, user, duration_seconds=duration, rate={"amount": rate, "currency": currency})
    )
    assert out["total"] == {"amount": total, "currency": currency}
    assert out["rate"]["currency"] == currency


def test_validation_errors_name_fields(
    api: httpx.Client, matter: dict[str, Any], user: dict[str, Any]
) -> None:
    both = errors(api.post(URL, json=time_body(matter, user, flat_fee=gbp("10.00"))))
    assert "not both" in both["body.flat_fee"]["message"]
    neither = errors(api.post(URL, json=time_body(matter, user, duration_seconds=..., rate=...)))
    assert set(neither) == {"body.duration_seconds", "body.rate"}
    only_duration = errors(api.post(URL, json=time_body(matter, user, rate=...)))
    assert set(only_duration) == {"body.rate"}
    floaty = errors(api.post(URL, json=time_body(matter, user, rate={"amount": 250.5, "currency": "GBP"})))
    assert "not floating-point" in floaty["body.rate.amount"]["message"]
    too_fine = errors(
        api.post(URL, json=time_body(matter, user, duration_seconds=..., rate=..., flat_fee=gbp("1.005")))
    )
    assert "at most 2 decimal places" in too_fine["body.flat_fee"]["message"]
    yen = errors(api.post(URL, json=expense_body(matter, amount={"amount": "10.5", "currency": "JPY"})))
    assert "at most 0 decimal places" in yen["body.amount"]["message"]
    rate_places = errors(api.post(URL, json=time_body(matter, user, rate=gbp("1.00001"))))
    assert "at most 4 decimal places" in rate_places["body.rate"]["message"]
    assert "body.duration_seconds" in errors(
        api.post(URL, json=time_body(matter, user, duration_seconds=1.5))
    )
    assert "body.duration_seconds" in errors(
        api.post(URL, json=time_body(matter, user, duration_seconds="60"))
    )
    assert "body.duration_seconds" in errors(
        api.post(URL, json=time_body(matter, user, duration_seconds=7 * 24 * 3600 + 1))
    )
    assert "body.duration_seconds" in errors(api.post(URL, json=time_body(matter, user, duration_seconds=-1)))
    negative = errors(api.post(URL, json=time_body(matter, user, rate=gbp("-1.00"))))
    assert "negative" in negative["body.rate"]["message"]
    assert "body.amount" in errors(api.post(URL, json=expense_body(matter, amount=gbp("-5.00"))))
    assert "body.rate.currency" in errors(
        api.post(URL, json=time_body(matter, user, rate=gbp("1") | {"currency": "gbp"}))
    )

    missing = "00000000-0000-0000-0000-000000000000"
    unknown_matter = errors(api.post(URL, json=time_body({"id": missing}, user)))
    assert unknown_matter["body.matter_id"]["code"] == "unknown_matter"
    unknown_user = errors(api.post(URL, json=time_body(matter, {"id": missing})))
    assert unknown_user["body.user_id"]["code"] == "unknown_user"
    unknown_supplier = errors(api.post(URL, json=expense_body(matter, supplier_id=missing)))
    assert unknown_supplier["body.supplier_id"]["code"] == "unknown_contact"
    no_earner = errors(api.post(URL, json=time_body(matter, user, user_id=...)))
    assert "fee earner" in no_earner["body.user_id"]["message"]

    no_kind = errors(api.post(URL, json={"matter_id": matter["id"], "date": "2026-11-02"}))
    assert list(no_kind) == ["body.kind"]
    bad_kind = errors(api.post(URL, json=expense_body(matter, kind="mileage")))
    assert "'mileage'" in bad_kind["body.kind"]["message"]
    wrong_fields = errors(api.post(URL, json=expense_body(matter, rate=gbp("1"), bogus=1)))
    assert {"body.rate", "body.bogus"} <= set(wrong_fields)
    assert "body.date" in errors(api.post(URL, json=expense_body(matter, date="2026-02-30")))
    assert api.get(URL, params={"matter_id": matter["id"]}).json()["data"] == []


def test_archived_supplier_and_inactive_fee_earner_refused(
    api: httpx.Client, matter: dict[str, Any], user: dict[str, Any]
) -> None:
    supplier = create_contact(api)
    assert api.delete(f"/api/v1/contacts/{supplier['id']}").status_code == 200
    assert "body.supplier_id" in errors(api.post(URL, json=expense_body(matter, supplier_id=supplier["id"])))
    assert api.patch(f"/api/v1/users/{user['id']}", json={"active": False}).status_code == 200
    inactive = errors(api.post(URL, json=time_body(matter, user)))
    assert inactive["body.user_id"]["code"] == "inactive_user"


def test_closed_or_archived_matter_refuses_new_activities(api: httpx.Client, user: dict[str, Any]) -> None:
    closed = create_matter(api)
    existing = post(api, time_body(closed, user))
    assert api.patch(f"/api/v1/matters/{closed['id']}", json={"status": "closed"}).status_code == 200
    r = api.post(URL, json=time_body(closed, user))
    assert r.status_code == 409
    assert "closed" in r.json()["detail"]
    assert api.post(URL, json=expense_body(closed)).status_code == 409
    # Entries already on it can still be finished off for the final bill.
    assert api.patch(f"{URL}/{existing['id']}", json={"description": "Final"}).status_code == 200
    assert api.post(f"{URL}/{existing['id']}/submit").status_code == 200

    archived = create_matter(api)
    assert api.delete(f"/api/v1/matters/{archived['id']}").status_code == 200
    r = api.post(URL, json=expense_body(archived))
    assert (r.status_code, r.json()["type"]) == (409, "/problems/archived")
    # Nor can an entry be moved onto a closed matter.
    draft = post(api, time_body(create_matter(api), user))
    assert api.patch(f"{URL}/{draft['id']}", json={"matter_id": closed["id"]}).status_code == 409


def test_default_fee_earner_is_the_tokens_user(
    api: httpx.Client, live_server: LiveServer, clean: Backend, matter: dict[str, Any]
) -> None:
    earner = create_user(api)
    with unit_of_work(clean.db.writer) as session:
        issued = create_token(session, name="earner", role=Role.STAFF, user_id=uuid.UUID(earner["id"]))
    headers = {"Authorization": f"Bearer {issued.secret}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=60) as own:
        made = post(own, time_body(matter, earner, user_id=...))
        assert made["user_id"] == earner["id"]
        expense = post(own, expense_body(matter))
        assert expense["user_id"] == earner["id"]
        nobody = post(own, expense_body(matter, user_id=None))
        assert nobody["user_id"] is None


def test_state_machine_happy_path_and_history(make_client: MakeClient, user: dict[str, Any]) -> None:
    staff = make_client(Role.STAFF)
    admin = make_client(Role.ADMIN)
    integration = make_client(Role.INTEGRATION)
    matter = create_matter(admin)
    entry = post(staff, time_body(matter, user))
    aid = entry["id"]

    submitted = staff.post(f"{URL}/{aid}/submit", headers={"If-Match": entry["etag"]})
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["state"] == "submitted"
    assert submitted.json()["submitted_at"] is not None
    assert submitted.headers["etag"] == submitted.json()["etag"] != entry["etag"]

    approved = integration.post(f"{URL}/{aid}/approve")
    assert approved.status_code == 200
    assert approved.json()["state"] == "approved"
    assert approved.json()["approved_at"] is not None

    rejected = admin.post(f"{URL}/{aid}/reject", json={"reason": "Narrative too vague"})
    assert rejected.status_code == 200
    body = rejected.json()
    assert (body["state"], body["submitted_at"], body["approved_at"]) == ("draft", None, None)

    assert staff.patch(f"{URL}/{aid}", json={"description": "Drafting clause 4"}).status_code == 200
    assert staff.post(f"{URL}/{aid}/submit").status_code == 200
    assert admin.post(f"{URL}/{aid}/approve").status_code == 200
    billed = integration.post(f"{URL}/{aid}/bill", json={"bill_reference": "INV-0042"})
    assert billed.status_code == 200
    assert (billed.json()["state"], billed.json()["bill_reference"]) == ("billed", "INV-0042")
    assert billed.json()["billed_at"] is not None

    history = staff.get(f"{URL}/{aid}/history").json()["data"]
    assert [e["type"] for e in history] == [
        "activity.created",
        "activity.submitted",
        "activity.approved",
        "activity.rejected",
        "activity.updated",
        "activity.submitted",
        "activity.approved",
        "activity.billed",
    ]
    created = history[0]["changes"]
    assert created["total"] == {"old": None, "new": gbp("375.00")}
    assert created["state"] == {"old": None, "new": "draft"}
    assert history[1]["changes"]["state"] == {"old": "draft", "new": "submitted"}
    assert history[3]["changes"]["reason"] == {"old": None, "new": "Narrative too vague"}
    assert history[3]["changes"]["state"] == {"old": "approved", "new": "draft"}
    assert history[3]["actor"]["role"] == "admin"
    assert history[4]["changes"] == {
        "description": {"old": "Drafting the contract", "new": "Drafting clause 4"}
    }
    assert history[7]["changes"]["bill_reference"] == {"old": None, "new": "INV-0042"}
    assert set(history[7]["changes"]) == {"state", "billed_at", "bill_reference"}


def _in_state(api: httpx.Client, matter: dict[str, Any], user: dict[str, Any], state: str) -> str:
    aid: str = post(api, time_body(matter, user))["id"]
    steps = {"draft": [], "submitted": ["submit"], "approved": ["submit", "approve"]}
    for action in steps.get(state, ["submit", "approve", "bill"]):
        body = {"bill_reference": "INV-1"} if action == "bill" else None
        assert api.post(f"{URL}/{aid}/{action}", json=body).status_code == 200
    return aid


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("draft", "approve"),
        ("draft", "reject"),
        ("draft", "bill"),
        ("submitted", "submit"),
        ("submitted", "bill"),
        ("approved", "submit"),
        ("approved", "approve"),
        ("billed", "submit"),
        ("billed", "approve"),
        ("billed", "reject"),
        ("billed", "bill"),
    ],
)
def test_invalid_transitions_are_409(
    api: httpx.Client, matter: dict[str, Any], user: dict[str, Any], state: str, action: str
) -> None:
    aid = _in_state(api, matter, user, state)
    body = {"reject": {"reason": "no"}, "bill": {"bill_reference": "INV-2"}}.get(action)
    r = api.post(f"{URL}/{aid}/{action}", json=body)
    assert r.status_code == 409, r.text
    problem = r.json()
    assert problem["type"] == "/problems/invalid-state"
    assert problem["state"] == state
    assert f"it is {state}" in problem["detail"]
    assert api.get(f"{URL}/{aid}").json()["state"] == state
    events = api.get(f"{URL}/{aid}/history").json()["data"]
    assert len(events) == {"draft": 1, "submitted": 2, "approved": 3, "billed": 4}[state]


def test_transition_roles_and_bodies(make_client: MakeClient, user: dict[str, Any]) -> None:
    staff = make_client(Role.STAFF)
    reader = make_client(Role.READ_ONLY)
    admin = make_client(Role.ADMIN)
    matter = create_matter(admin)
    assert reader.post(URL, json=time_body(matter, user)).status_code == 403
    aid = post(staff, time_body(matter, user))["id"]
    assert reader.post(f"{URL}/{aid}/submit").status_code == 403
    assert staff.post(f"{URL}/{aid}/submit").status_code == 200
    for action, body in [("approve", None), ("reject", {"reason": "x"}), ("bill", {"bill_reference": "B"})]:
        assert staff.post(f"{URL}/{aid}/{action}", json=body).status_code == 403
    assert "body.reason" in errors(admin.post(f"{URL}/{aid}/reject", json={"reason": "  "}))
    assert "body.reason" in errors(admin.post(f"{URL}/{aid}/reject", json={}))
    assert admin.post(f"{URL}/{aid}/approve").status_code == 200
    assert "body.bill_reference" in errors(admin.post(f"{URL}/{aid}/bill", json={}))
    assert reader.get(f"{URL}/{aid}").status_code == 200


def test_locking_of_submitted_approved_and_billed(make_client: MakeClient, user: dict[str, Any]) -> None:
    staff = make_client(Role.STAFF)
    integration = make_client(Role.INTEGRATION)
    admin = make_client(Role.ADMIN)
    matter = create_matter(admin)
    aid = post(staff, time_body(matter, user))["id"]
    assert staff.post(f"{URL}/{aid}/submit").status_code == 200

    for client in (staff, integration):
        r = client.patch(f"{URL}/{aid}", json={"duration_seconds": 60})
        assert r.status_code == 409
        assert r.json()["type"] == "/problems/invalid-state"
        assert "locked" in r.json()["detail"]
        assert "admin" in r.json()["detail"]

    edited = admin.patch(f"{URL}/{aid}", json={"duration_seconds": 3600})
    assert edited.status_code == 200, edited.text
    assert (edited.json()["state"], edited.json()["total"]) == ("submitted", gbp("250.00"))

    assert admin.post(f"{URL}/{aid}/approve").status_code == 200
    assert staff.patch(f"{URL}/{aid}", json={"description": "x"}).status_code == 409
    assert admin.patch(f"{URL}/{aid}", json={"description": "Approved, corrected"}).status_code == 200
    assert admin.post(f"{URL}/{aid}/bill", json={"bill_reference": "INV-7"}).status_code == 200

    for client in (staff, integration, admin):
        r = client.patch(f"{URL}/{aid}", json={"description": "too late"})
        assert r.status_code == 409
        assert "billed" in r.json()["detail"]
        assert client.delete(f"{URL}/{aid}").status_code == 409
    history = admin.get(f"{URL}/{aid}/history").json()["data"]
    updates = [e for e in history if e["type"] == "activity.updated"]
    assert updates[0]["changes"]["total"] == {"old": gbp("375.00"), "new": gbp("250.00")}
    assert updates[0]["changes"]["duration_seconds"] == {"old": 5400, "new": 3600}


def test_delete_rules(make_client: MakeClient, user: dict[str, Any]) -> None:
    staff = make_client(Role.STAFF)
    admin = make_client(Role.ADMIN)
    matter = create_matter(admin)
    draft = post(staff, time_body(matter, user))
    deleted = staff.delete(f"{URL}/{draft['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert staff.get(f"{URL}/{draft['id']}").status_code == 404
    assert staff.delete(f"{URL}/{draft['id']}").status_code == 404
    history = staff.get(f"{URL}/{draft['id']}/history").json()["data"]
    assert [e["type"] for e in history] == ["activity.created", "activity.deleted"]
    gone = history[1]["changes"]
    assert gone["total"] == {"old": gbp("375.00"), "new": None}
    assert gone["state"] == {"old": "draft", "new": None}
    assert staff.get(f"{URL}/00000000-0000-0000-0000-000000000000/history").status_code == 404

    submitted = _in_state(staff, matter, user, "submitted")
    r = staff.delete(f"{URL}/{submitted}")
    assert r.status_code == 409
    assert "only an admin" in r.json()["detail"]
    assert admin.delete(f"{URL}/{submitted}").status_code == 204
    approved = _in_state(admin, matter, user, "approved")
    assert staff.delete(f"{URL}/{approved}").status_code == 409
    assert admin.delete(f"{URL}/{approved}").status_code == 204
    billed = _in_state(admin, matter, user, "billed")
    assert admin.delete(f"{URL}/{billed}").status_code == 409
    assert make_client(Role.READ_ONLY).delete(f"{URL}/{billed}").status_code == 403


def test_if_match_preconditions(api: httpx.Client, matter: dict[str, Any], user: dict[str, Any]) -> None:
    entry = post(api, time_body(matter, user))
    aid, etag = entry["id"], entry["etag"]
    changed = api.patch(f"{URL}/{aid}", json={"description": "v2"}, headers={"If-Match": etag})
    assert changed.status_code == 200
    new_etag = changed.headers["etag"]
    stale = {"If-Match": etag}
    r = api.patch(f"{URL}/{aid}", json={"description": "v3"}, headers=stale)
    assert r.status_code == 412
    assert r.json()["current_etag"] == new_etag
    assert api.post(f"{URL}/{aid}/submit", headers=stale).status_code == 412
    assert api.delete(f"{URL}/{aid}", headers=stale).status_code == 412
    assert api.post(f"{URL}/{aid}/submit", headers={"If-Match": new_etag}).status_code == 200
    assert api.get(f"{URL}/{aid}").json()["description"] == "v2"
    assert api.get(f"{URL}/{aid}", headers={"If-None-Match": new_etag}).status_code == 200


def test_patch_revalidates_the_merged_activity(
    api: httpx.Client, matter: dict[str, Any], user: dict[str, Any]
) -> None:
    aid = post(api, time_body(matter, user))["id"]
    half_switch = errors(api.patch(f"{URL}/{aid}", json={"flat_fee": gbp("99.00")}))
    assert "duration_seconds: null" in half_switch["body.flat_fee"]["message"]
    switched = api.patch(
        f"{URL}/{aid}", json={"flat_fee": gbp("99.00"), "duration_seconds": None, "rate": None}
    )
    assert switched.status_code == 200, switched.text
    body = switched.json()
    assert (body["billing_method"], body["total"], body["rate"]) == ("flat", gbp("99.00"), None)
    back = errors(api.patch(f"{URL}/{aid}", json={"flat_fee": None, "duration_seconds": 600}))
    assert set(back) == {"body.rate"}
    hourly = api.patch(f"{URL}/{aid}", json={"flat_fee": None, "duration_seconds": 600, "rate": gbp("300")})
    assert (hourly.json()["billing_method"], hourly.json()["total"]) == ("hourly", gbp("50.00"))

    usd = errors(api.patch(f"{URL}/{aid}", json={"rate": {"amount": "300", "currency": "USD"}}))
    assert usd["body.rate.currency"]["code"] == "currency_mismatch"
    not_time = errors(api.patch(f"{URL}/{aid}", json={"amount": gbp("1.00"), "category": "x"}))
    assert {f: e["code"] for f, e in not_time.items()} == {
        "body.amount": "not_applicable",
        "body.category": "not_applicable",
    }
    assert errors(api.patch(f"{URL}/{aid}", json={"date": None}))["body.date"]["code"] == "null"
    assert (
        "fee earner" in errors(api.patch(f"{URL}/{aid}", json={"user_id": None}))["body.user_id"]["message"]
    )
    assert "body.kind" in errors(api.patch(f"{URL}/{aid}", json={"kind": "expense"}))

    other_matter = create_matter(api)
    other_user = create_user(api)
    moved = api.patch(
        f"{URL}/{aid}",
        json={"matter_id": other_matter["id"], "user_id": other_user["id"], "date": "2026-10-01"},
    )
    assert moved.status_code == 200
    assert (moved.json()["matter_id"], moved.json()["user_id"], moved.json()["date"]) == (
        other_matter["id"],
        other_user["id"],
        "2026-10-01",
    )
    unchanged = api.patch(f"{URL}/{aid}", json={"date": "2026-10-01"})
    assert unchanged.json()["etag"] == moved.json()["etag"]

    expense = post(api, expense_body(matter))
    not_expense = errors(api.patch(f"{URL}/{expense['id']}", json={"rate": gbp("1")}))
    assert not_expense["body.rate"]["code"] == "not_applicable"
    assert errors(api.patch(f"{URL}/{expense['id']}", json={"amount": None}))["body.amount"]["code"] == "null"
    cheaper = api.patch(
        f"{URL}/{expense['id']}", json={"amount": gbp("40.00"), "category": None, "supplier_id": None}
    )
    assert (cheaper.json()["total"], cheaper.json()["category"]) == (gbp("40.00"), None)
    history = api.get(f"{URL}/{aid}/history").json()["data"]
    assert [e["type"] for e in history] == ["activity.created"] + ["activity.updated"] * 3


def test_list_filters_and_cursor_paging(api: httpx.Client, user: dict[str, Any]) -> None:
    first, second = create_matter(api), create_matter(api)
    other = create_user(api)
    made = [post(api, time_body(first, user, date=f"2026-11-{day:02d}")) for day in (5, 1, 3, 2, 4)]
    expense = post(api, expense_body(first, date="2026-10-15"))
    elsewhere = post(api, time_body(second, other, date="2026-11-01"))
    assert api.post(f"{URL}/{made[0]['id']}/submit").status_code == 200

    def ids(**params: Any) -> list[str]:
        r = api.get(URL, params=params)
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["data"]]

    by_date = sorted(made, key=lambda a: a["date"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "matter_id": first["id"], "kind": "time", "order": "date"}
        if cursor:
            params["cursor"] = cursor
        page = api.get(URL, params=params).json()
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [a["id"] for a in by_date]
    assert ids(matter_id=first["id"], order="-created_at") == [expense["id"]] + [
        a["id"] for a in reversed(made)
    ]
    assert ids(user_id=other["id"]) == [elsewhere["id"]]
    assert ids(kind="expense") == [expense["id"]]
    assert ids(state="submitted") == [made[0]["id"]]
    assert set(ids(date_from="2026-11-02", date_to="2026-11-04", matter_id=first["id"])) == {
        made[2]["id"],
        made[3]["id"],
        made[4]["id"],
    }
    since = api.get(f"{URL}/{made[0]['id']}").json()["updated_at"]
    assert ids(updated_since=since) == [made[0]["id"]]
    assert "query.date_to" in errors(
        api.get(URL, params={"date_from": "2026-11-05", "date_to": "2026-11-01"})
    )
    assert "query.state" in errors(api.get(URL, params={"state": "paid"}))
    assert "query.order" in errors(api.get(URL, params={"order": "total"}))


def test_totals_per_currency_and_filters(api: httpx.Client, user: dict[str, Any]) -> None:
    matter = create_matter(api)
    usd = {"amount": "200", "currency": "USD"}
    post(api, time_body(matter, user, duration_seconds=1, rate=gbp("100")))  # 0.03
    post(api, time_body(matter, user, duration_seconds=1, rate=gbp("100")))  # 0.03, not 0.06 / 1.0
    post(api, time_body(matter, user, duration_seconds=2700, rate=usd))  # 150.00
    post(api, expense_body(matter, amount={"amount": "3000", "currency": "JPY"}))
    submitted = post(api, expense_body(matter, amount=gbp("10.00")))
    assert api.post(f"{URL}/{submitted['id']}/submit").status_code == 200
    post(api, time_body(create_matter(api), user))  # another matter: not counted

    totals = api.get(f"{URL}/totals", params={"matter_id": matter["id"]}).json()["totals"]
    assert [t["currency"] for t in totals] == ["GBP", "JPY", "USD"]
    gbp_row, jpy_row, usd_row = totals
    assert (gbp_row["time"], gbp_row["expenses"], gbp_row["total"]) == (
        gbp("0.06"),
        gbp("10.00"),
        gbp("10.06"),
    )
    assert (gbp_row["duration_seconds"], gbp_row["count"]) == (2, 3)
    assert jpy_row["total"] == {"amount": "3000", "currency": "JPY"}
    assert jpy_row["time"] == {"amount": "0", "currency": "JPY"}
    assert (usd_row["total"], usd_row["duration_seconds"]) == ({"amount": "150.00", "currency": "USD"}, 2700)

    drafts = api.get(f"{URL}/totals", params={"matter_id": matter["id"], "state": "submitted"}).json()
    assert drafts["totals"] == [
        {
            "currency": "GBP",
            "time": gbp("0.00"),
            "expenses": gbp("10.00"),
            "total": gbp("10.00"),
            "duration_seconds": 0,
            "count": 1,
        }
    ]
    assert api.get(f"{URL}/totals", params={"kind": "time", "date_from": "2030-01-01"}).json() == {
        "totals": []
    }
    everything = api.get(f"{URL}/totals").json()["totals"]
    assert [t["count"] for t in everything] == [4, 1, 1]

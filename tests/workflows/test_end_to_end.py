"""The Clio Operate pattern end to end, over loopback HTTP: an expense is approved, the workflow calls
the finance system, the finance system writes back through our API, and the workflow notes the payment
on the matter. Both auth modes (API key; OAuth2 client credentials with a cached token)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from casebridge.jobs.worker import Worker
from tests.workflows.conftest import (
    API_KEY,
    CLIENT_SECRET,
    add_api_key_service,
    add_oauth_service,
    add_workflow,
    event_id,
    expense,
    instance,
    matter,
    notes,
    ok,
    settled,
    wait_for,
)
from tests.workflows.finance import FinanceSystem

PAY_EXPENSES: dict[str, Any] = {
    "name": "pay approved expenses",
    "description": "Disbursements approved in Casebridge are paid by the finance system.",
    "trigger": {"event": "activity.approved", "condition": {"==": [{"var": "entity.kind"}, "expense"]}},
    "single_instance_per_entity": True,
    "steps": [
        {
            "id": "pay",
            "action": "http",
            "service": "finance",
            "method": "POST",
            "path": "/payments",
            "body": {
                "reference": "{{ entity.id }}",
                "matter_id": "{{ entity.matter_id }}",
                "amount": "{{ entity.total.amount }}",
                "currency": "{{ entity.total.currency }}",
                "description": "{{ entity.description }}",
            },
            "capture": {"payment_id": "response.body.id"},
            "expect_status": [201],
        },
        {
            "id": "note",
            "action": "add_note",
            "body": "Payment {{ vars.payment_id }} requested from finance: {{ entity.total.amount }} "
            "{{ entity.total.currency }}",
        },
    ],
}


def test_approved_expense_is_paid_by_finance_which_writes_back(
    api: httpx.Client, finance: FinanceSystem, worker: Worker
) -> None:
    add_api_key_service(api, finance)
    payer = add_workflow(api, PAY_EXPENSES)
    add_workflow(
        api,
        {
            "name": "matter watcher",
            "trigger": {"event": "matter.*"},
            "steps": [{"action": "add_note", "body": "matter event {{ event.type }}"}],
        },
    )
    add_workflow(
        api,
        {
            "name": "large disbursements",
            "trigger": {
                "event": "activity.approved",
                "condition": {">": [{"var": "entity.total.amount"}, 10000]},
            },
            "steps": [{"action": "raise_alert", "severity": "critical", "message": "Large disbursement"}],
        },
    )
    m = matter(api)
    activity = expense(api, m["id"], "250.00")

    (inst,) = settled(api, 1, workflow_id=payer["id"])
    assert inst["state"] == "completed", inst
    assert inst["variables"] == {"payment_id": "PAY-1"}

    # The finance system received the payment with the API key, and wrote back through our API.
    assert [p["reference"] for p in finance.payments] == [activity["id"]]
    assert finance.payments[0]["amount"] == "250.00"
    assert [status for status, _ in finance.write_backs] == [200], finance.write_backs
    billed = ok(api.get(f"/api/v1/activities/{activity['id']}"))
    assert billed["state"] == "billed"
    assert billed["bill_reference"] == "PAY-1"
    assert "Payment PAY-1 requested from finance: 250.00 GBP" in notes(api, m["id"])

    # The step log shows request and response, with the key redacted everywhere.
    detail = instance(api, inst["id"])
    pay, note = detail["steps"]
    assert (pay["step_id"], pay["status"], note["step_id"], note["status"]) == ("pay", "ok", "note", "ok")
    assert pay["input"]["method"] == "POST"
    assert pay["input"]["url"] == f"{finance.base_url}/payments"
    assert pay["input"]["headers"]["X-API-Key"] == "[redacted]"
    assert pay["input"]["body"]["reference"] == activity["id"]
    assert pay["output"]["response"]["status"] == 201
    assert pay["output"]["response"]["body"]["id"] == "PAY-1"
    assert API_KEY not in json.dumps(detail)
    assert API_KEY not in api.get("/api/v1/events", params={"limit": 200}).text

    # The inspector explains every workflow's decision on the approval event.
    approved = event_id(api, "activity.approved", activity["id"])
    report = ok(api.get(f"/api/v1/workflows/inspector/{approved}"))
    assert report["event"]["id"] == approved
    by_name = {w["workflow_name"]: w for w in report["workflows"]}
    assert by_name["pay approved expenses"]["matched"] is True
    assert by_name["pay approved expenses"]["instance"]["state"] == "completed"
    assert [s["step_id"] for s in by_name["pay approved expenses"]["instance"]["steps"]] == ["pay", "note"]
    assert by_name["matter watcher"]["matched"] is False
    assert (
        by_name["matter watcher"]["reason"] == "event type activity.approved does not match trigger matter.*"
    )
    assert by_name["large disbursements"]["matched"] is False
    assert by_name["large disbursements"]["reason"] == (
        'condition false: entity.total.amount > 10000 (where entity.total.amount = "250.00")'
    )
    # The write-back's own event (activity.billed, by the finance system's token) started nothing.
    billed_event = event_id(api, "activity.billed", activity["id"])
    report = ok(api.get(f"/api/v1/workflows/inspector/{billed_event}"))
    assert not any(w["matched"] for w in report["workflows"])
    events = ok(api.get("/api/v1/events", params={"type": "activity.billed", "entity_id": activity["id"]}))
    assert events["data"][0]["actor"]["name"] == "finance-system"
    started = ok(api.get("/api/v1/events", params={"type": "matter.note_added", "entity_id": m["id"]}))
    assert any(e["actor"]["name"] == "workflow:pay approved expenses" for e in started["data"])


def test_oauth2_client_credentials_token_is_fetched_once_for_several_calls(
    api: httpx.Client, oauth_finance: FinanceSystem, worker: Worker
) -> None:
    add_oauth_service(api, oauth_finance)
    payer = add_workflow(api, PAY_EXPENSES)
    m = matter(api)
    made = [expense(api, m["id"], f"{n}0.00") for n in range(1, 4)]

    done = settled(api, 3, workflow_id=payer["id"])
    assert [i["state"] for i in done] == ["completed"] * 3
    assert oauth_finance.token_hits == 1
    assert sorted(p["reference"] for p in oauth_finance.payments) == sorted(a["id"] for a in made)
    for inst in done:
        detail = instance(api, inst["id"])
        assert detail["steps"][0]["input"]["headers"]["Authorization"] == "[redacted]"
        text = json.dumps(detail)
        assert CLIENT_SECRET not in text
        assert not any(token in text for token in oauth_finance.tokens)

    # The finance system revokes its tokens: the next call gets 401, fetches a token once, succeeds.
    oauth_finance.revoke_tokens()
    expense(api, m["id"], "99.00")
    wait_for(lambda: len(oauth_finance.payments) == 4, what="the fourth payment")
    settled(api, 4, workflow_id=payer["id"])
    assert oauth_finance.token_hits == 2

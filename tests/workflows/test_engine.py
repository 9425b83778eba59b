"""Instance behaviour: single instance per entity, redelivery, waits, branches, failures with retry,
cancel, record-changing actions, versions and the loop guard."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.events.delivery import Delivery
from casebridge.events.schemas import EventOut
from casebridge.jobs.queue import ClaimedJob
from casebridge.jobs.worker import JobContext, Worker
from casebridge.models import Event, EventSubscription, Job, WorkflowEvaluation, WorkflowInstance
from casebridge.workflows import engine
from tests.conftest import Backend
from tests.workflows.conftest import (
    add_api_key_service,
    add_workflow,
    event_id,
    expense,
    instance,
    instances,
    matter,
    notes,
    ok,
    settled,
    wait_for,
)
from tests.workflows.finance import FinanceSystem

NOTE_ON_APPROVAL: dict[str, Any] = {
    "name": "note approvals",
    "trigger": {"event": "activity.approved"},
    "single_instance_per_entity": True,
    "steps": [{"id": "note", "action": "add_note", "body": "Approved: {{ entity.description }}"}],
}


def pay_step(**overrides: Any) -> dict[str, Any]:
    step = {
        "id": "pay",
        "action": "http",
        "service": "finance",
        "path": "/payments",
        "body": {"reference": "{{ entity.id }}"},
        "capture": {"payment_id": "response.body.id"},
        "max_attempts": 2,
        "retry_delay_seconds": 0.05,
    }
    step.update(overrides)
    return step


def test_single_instance_per_entity_skips_a_second_start(api: httpx.Client, worker: Worker) -> None:
    wf = add_workflow(api, NOTE_ON_APPROVAL)
    m = matter(api)
    a = expense(api, m["id"])
    settled(api, 1, workflow_id=wf["id"])
    # Approved again after a rejection: the same trigger for the same entity.
    ok(api.post(f"/api/v1/activities/{a['id']}/reject", json={"reason": "wrong category"}))
    ok(api.post(f"/api/v1/activities/{a['id']}/submit"))
    ok(api.post(f"/api/v1/activities/{a['id']}/approve"))
    second = event_id(api, "activity.approved", a["id"])
    report = wait_for(
        lambda: next(
            (w for w in ok(api.get(f"/api/v1/workflows/inspector/{second}"))["workflows"] if w["evaluated"]),
            None,
        ),
        what="the second approval's evaluation",
    )
    (first,) = instances(api, workflow_id=wf["id"])
    assert report["matched"] is False
    assert report["reason"] == (
        f"skipped: single instance per entity, instance {first['id']} already completed for activity {a['id']}"
    )
    assert len(instances(api, workflow_id=wf["id"])) == 1
    assert notes(api, m["id"]) == ["Approved: Local authority search"]


def test_a_redelivered_event_starts_no_second_instance(
    api: httpx.Client, clean: Backend, worker: Worker
) -> None:
    wf = add_workflow(api, {**NOTE_ON_APPROVAL, "single_instance_per_entity": False})
    m = matter(api)
    a = expense(api, m["id"])
    settled(api, 1, workflow_id=wf["id"])
    approved = event_id(api, "activity.approved", a["id"])
    with unit_of_work(clean.db.reader) as session:
        row = session.get(Event, approved)
        sub = session.scalar(select(EventSubscription).where(EventSubscription.name == "workflows"))
        assert row is not None
        assert sub is not None
        event = EventOut.of(row)
        session.expunge(sub)
    job = ClaimedJob(
        id=0, kind="events.deliver", queue="default", args={}, attempt=2, max_attempts=5, concurrency_key=None
    )
    ctx = JobContext(job, clean.db, clean.settings, "test")
    for _ in range(3):  # at least once means maybe more than once
        engine.deliver(Delivery(ctx, sub, event, 2))
    with unit_of_work(clean.db.reader) as session:
        started = session.scalar(select(func.count()).select_from(WorkflowInstance))
        decided = session.scalar(select(func.count()).where(WorkflowEvaluation.event_id == approved))
    assert (started, decided) == (1, 1)
    assert notes(api, m["id"]) == ["Approved: Local authority search"]


def test_wait_parks_the_instance_and_resumes_it(api: httpx.Client, worker: Worker) -> None:
    wf = add_workflow(
        api,
        {
            "name": "chase later",
            "trigger": {"event": "matter.created"},
            "steps": [
                {"id": "pause", "action": "wait", "duration_seconds": 2},
                {"id": "chase", "action": "add_note", "body": "Chase the client for {{ entity.title }}"},
            ],
        },
    )
    m = matter(api)
    waiting = wait_for(lambda: [i for i in instances(api, workflow_id=wf["id"]) if i["state"] == "waiting"])
    assert waiting[0]["wake_at"] is not None
    assert waiting[0]["position"] == "1"
    assert notes(api, m["id"]) == []
    (done,) = settled(api, 1, workflow_id=wf["id"])
    assert done["state"] == "completed"
    assert notes(api, m["id"]) == [f"Chase the client for {m['title']}"]
    steps = instance(api, done["id"])["steps"]
    assert [(s["step_id"], s["status"]) for s in steps] == [("pause", "waiting"), ("chase", "ok")]


def test_wait_until_a_past_time_does_not_wait(api: httpx.Client, worker: Worker) -> None:
    wf = add_workflow(
        api,
        {
            "name": "until the past",
            "trigger": {"event": "matter.created"},
            "steps": [
                {"action": "wait", "until": "{{ entity.created_at }}"},
                {"action": "add_note", "body": "done"},
            ],
        },
    )
    m = matter(api)
    (done,) = settled(api, 1, workflow_id=wf["id"])
    assert done["state"] == "completed"
    assert notes(api, m["id"]) == ["done"]


BIG_OR_SMALL: dict[str, Any] = {
    "name": "big or small",
    "trigger": {"event": "activity.approved"},
    "steps": [
        {
            "id": "size",
            "action": "branch",
            "condition": {">": [{"var": "entity.total.amount"}, 100]},
            "then": [
                {
                    "id": "alert",
                    "action": "raise_alert",
                    "severity": "critical",
                    "message": "Large disbursement of {{ entity.total.amount }} on {{ entity.matter_id }}",
                }
            ],
            "else": [
                {"id": "small", "action": "add_note", "body": "Small disbursement {{ entity.total.amount }}"}
            ],
        },
        {"id": "after", "action": "add_note", "body": "Reviewed {{ entity.id }}"},
    ],
}


def test_branch_goes_both_ways_and_carries_on_after(api: httpx.Client, worker: Worker) -> None:
    wf = add_workflow(api, BIG_OR_SMALL)
    m = matter(api)
    big = expense(api, m["id"], "500.00")
    small = expense(api, m["id"], "50.00")
    done = settled(api, 2, workflow_id=wf["id"])
    by_entity = {i["entity_id"]: instance(api, i["id"]) for i in done}
    assert [(s["step_id"], s["output"]) for s in by_entity[big["id"]]["steps"][:2]] == [
        ("size", {"result": True, "branch": "then"}),
        ("alert", {"id": by_entity[big["id"]]["steps"][1]["output"]["id"]}),
    ]
    assert [s["step_id"] for s in by_entity[small["id"]]["steps"]] == ["size", "small", "after"]
    assert by_entity[small["id"]]["steps"][0]["input"] == {"condition": "entity.total.amount > 100"}

    alerts = ok(api.get(f"/api/v1/matters/{m['id']}/alerts"))["data"]
    assert [(a["severity"], a["message"], a["entity_id"]) for a in alerts] == [
        ("critical", f"Large disbursement of 500.00 on {m['id']}", big["id"])
    ]
    assert alerts[0]["source"] == "workflow:big or small"
    assert sorted(notes(api, m["id"])) == sorted(
        ["Small disbursement 50.00", f"Reviewed {big['id']}", f"Reviewed {small['id']}"]
    )


def test_http_failures_are_retried_then_fail_and_the_api_retry_resumes(
    api: httpx.Client, finance: FinanceSystem, worker: Worker
) -> None:
    add_api_key_service(api, finance)
    wf = add_workflow(
        api,
        {
            "name": "pay",
            "trigger": {"event": "activity.approved"},
            "steps": [
                {"id": "before", "action": "add_note", "body": "paying"},
                pay_step(),
                {"id": "after", "action": "add_note", "body": "paid as {{ vars.payment_id }}"},
            ],
        },
    )
    finance.fail_next = -1  # the ledger is down
    m = matter(api)
    a = expense(api, m["id"])
    (failed,) = settled(api, 1, workflow_id=wf["id"])
    assert failed["state"] == "failed"
    assert failed["error"].startswith("step pay (http) failed after 2 attempts: POST /payments answered 503")
    assert failed["position"] == "1"
    steps = instance(api, failed["id"])["steps"]
    assert [(s["step_id"], s["status"]) for s in steps] == [
        ("before", "ok"),
        ("pay", "failed"),
        ("pay", "failed"),
    ]
    assert steps[1]["error"].startswith("attempt 1 of 2: POST /payments answered 503")
    assert steps[1]["output"]["response"]["body"] == {"error": "ledger unavailable"}

    # Cannot cancel a failed instance; retry resumes at the failed step (the first note is not repeated).
    r = api.post(f"/api/v1/workflows/instances/{failed['id']}/cancel")
    assert r.status_code == 409
    assert r.json()["type"] == "/problems/invalid-state"
    finance.fail_next = 0
    retried = ok(api.post(f"/api/v1/workflows/instances/{failed['id']}/retry"))
    assert retried["state"] == "running"
    assert retried["error"] is None
    (done,) = settled(api, 1, workflow_id=wf["id"])
    assert done["state"] == "completed"
    assert done["variables"] == {"payment_id": "PAY-1"}
    assert notes(api, m["id"]) == ["paying", "paid as PAY-1"]
    assert [p["reference"] for p in finance.payments] == [a["id"]]
    assert ok(api.get(f"/api/v1/activities/{a['id']}"))["bill_reference"] == "PAY-1"
    assert api.post(f"/api/v1/workflows/instances/{failed['id']}/retry").status_code == 409
    types = [e["type"] for e in ok(api.get("/api/v1/events", params={"type": "workflow_instance.*"}))["data"]]
    assert types == [
        "workflow_instance.started",
        "workflow_instance.failed",
        "workflow_instance.retried",
        "workflow_instance.completed",
    ]


def test_a_client_error_fails_at_once_and_a_missing_capture_fails_visibly(
    api: httpx.Client, finance: FinanceSystem, worker: Worker
) -> None:
    add_api_key_service(api, finance)
    wf = add_workflow(
        api,
        {
            "name": "pay",
            "trigger": {"event": "activity.approved"},
            "steps": [pay_step(max_attempts=5)],
        },
    )
    finance.fail_next, finance.fail_status = 1, 422
    m = matter(api)
    expense(api, m["id"])
    (failed,) = settled(api, 1, workflow_id=wf["id"])
    assert failed["error"].startswith("step pay (http) failed: POST /payments answered 422")
    assert len(instance(api, failed["id"])["steps"]) == 1

    wf2 = add_workflow(
        api,
        {
            "name": "capture missing",
            "trigger": {"event": "activity.approved"},
            "steps": [pay_step(capture={"nothing": "response.body.no_such_field"})],
        },
    )
    expense(api, m["id"])
    (failed,) = settled(api, 1, workflow_id=wf2["id"])
    assert failed["error"] == (
        "step pay (http) failed: the response has nothing to capture at nothing <- response.body.no_such_field"
    )


def test_cancel_stops_a_waiting_instance(api: httpx.Client, worker: Worker) -> None:
    wf = add_workflow(
        api,
        {
            "name": "slow",
            "trigger": {"event": "matter.created"},
            "steps": [{"action": "wait", "duration_seconds": 1}, {"action": "add_note", "body": "too late"}],
        },
    )
    m = matter(api)
    (waiting,) = wait_for(
        lambda: [i for i in instances(api, workflow_id=wf["id"]) if i["state"] == "waiting"]
    )
    cancelled = ok(api.post(f"/api/v1/workflows/instances/{waiting['id']}/cancel"))
    assert cancelled["state"] == "cancelled"
    time.sleep(2)
    assert instance(api, waiting["id"])["state"] == "cancelled"
    assert notes(api, m["id"]) == []
    assert api.post(f"/api/v1/workflows/instances/{waiting['id']}/cancel").status_code == 409


def test_update_entity_and_create_activity_go_through_the_domain_rules(
    api: httpx.Client, worker: Worker
) -> None:
    wf = add_workflow(
        api,
        {
            "name": "open file",
            "trigger": {"event": "matter.created"},
            "steps": [
                {"id": "area", "action": "update_entity", "field": "practice_area", "value": "Conveyancing"},
                {
                    "id": "fee",
                    "action": "create_activity",
                    "activity": {
                        "kind": "expense",
                        "matter_id": "{{ entity.id }}",
                        "date": "2026-11-21",
                        "amount": {"amount": "42.00", "currency": "GBP"},
                        "description": "Land Registry fee for {{ entity.display_number }}",
                    },
                    "save_as": "fee_id",
                },
                {
                    "id": "note",
                    "action": "add_note",
                    "body": "{{ entity.practice_area }} file; fee {{ vars.fee_id }}",
                },
            ],
        },
    )
    m = matter(api)
    (done,) = settled(api, 1, workflow_id=wf["id"])
    assert done["state"] == "completed", done
    fee_id = done["variables"]["fee_id"]
    fee = ok(api.get(f"/api/v1/activities/{fee_id}"))
    assert (fee["kind"], fee["state"], fee["total"]["amount"]) == ("expense", "draft", "42.00")
    assert fee["description"] == f"Land Registry fee for {m['display_number']}"
    assert ok(api.get(f"/api/v1/matters/{m['id']}"))["practice_area"] == "Conveyancing"
    assert notes(api, m["id"]) == [f"Conveyancing file; fee {fee_id}"]
    # The changes were made by the workflow's own principal, and did not trigger it again.
    updated = ok(api.get("/api/v1/events", params={"type": "matter.updated", "entity_id": m["id"]}))["data"]
    assert updated[0]["actor"]["name"] == "workflow:open file"
    assert updated[0]["actor"]["role"] == "integration"


def test_a_domain_refusal_fails_the_step_and_changes_nothing(api: httpx.Client, worker: Worker) -> None:
    wf = add_workflow(
        api,
        {
            "name": "edit approved",
            "trigger": {"event": "activity.approved"},
            "steps": [{"id": "edit", "action": "update_entity", "fields": {"description": "changed"}}],
        },
    )
    m = matter(api)
    a = expense(api, m["id"])
    (failed,) = settled(api, 1, workflow_id=wf["id"])
    assert failed["state"] == "failed"
    assert "submitted and approved entries are locked" in failed["error"]
    assert ok(api.get(f"/api/v1/activities/{a['id']}"))["description"] == "Local authority search"


def test_a_workflow_does_not_trigger_itself(api: httpx.Client, worker: Worker) -> None:
    wf = add_workflow(
        api,
        {
            "name": "echo",
            "trigger": {"event": "matter.*"},
            "steps": [{"action": "add_note", "body": "saw {{ event.type }}"}],
        },
    )
    m = matter(api)
    settled(api, 1, workflow_id=wf["id"])
    note_event = event_id(api, "matter.note_added", m["id"])
    report = wait_for(
        lambda: [
            w for w in ok(api.get(f"/api/v1/workflows/inspector/{note_event}"))["workflows"] if w["evaluated"]
        ]
    )
    assert report[0]["reason"].startswith("skipped: the event was raised by this workflow itself")
    time.sleep(0.3)
    assert notes(api, m["id"]) == ["saw matter.created"]


def test_instances_keep_their_version_and_inactive_workflows_start_nothing(
    api: httpx.Client, worker: Worker
) -> None:
    wf = add_workflow(api, {**NOTE_ON_APPROVAL, "single_instance_per_entity": False})
    m = matter(api)
    expense(api, m["id"])
    (first,) = settled(api, 1, workflow_id=wf["id"])
    changed = {**NOTE_ON_APPROVAL, "single_instance_per_entity": False}
    changed["steps"] = [{"id": "note", "action": "add_note", "body": "v2: {{ entity.id }}"}]
    v2 = ok(api.put(f"/api/v1/workflows/{wf['id']}", json=changed))
    assert v2["version"] == 2
    b = expense(api, m["id"])
    done = settled(api, 2, workflow_id=wf["id"])
    versions = {i["entity_id"]: i["workflow_version"] for i in done}
    assert versions[first["entity_id"]] == 1
    assert versions[b["id"]] == 2
    paused = ok(api.patch(f"/api/v1/workflows/{wf['id']}", json={"active": False}))
    assert (paused["active"], paused["version"]) == (False, 2)
    c = expense(api, m["id"])
    approved = event_id(api, "activity.approved", c["id"])
    time.sleep(0.5)
    assert len(instances(api, workflow_id=wf["id"])) == 2
    (item,) = ok(api.get(f"/api/v1/workflows/inspector/{approved}"))["workflows"]
    assert (item["evaluated"], item["matched"], item["reason"]) == (
        False,
        False,
        "not evaluated: the workflow is inactive",
    )


def test_instance_routes_answer_404_for_unknown_ids(api: httpx.Client) -> None:
    unknown = uuid.uuid4()
    assert api.get(f"/api/v1/workflows/instances/{unknown}").status_code == 404
    assert api.post(f"/api/v1/workflows/instances/{unknown}/retry").status_code == 404
    assert api.get("/api/v1/workflows/inspector/999999").status_code == 404


def test_a_step_failing_right_after_a_wait_fails_the_instance(api: httpx.Client, worker: Worker) -> None:
    wf = add_workflow(
        api,
        {
            "name": "late failure",
            "trigger": {"event": "matter.created"},
            "steps": [
                {"action": "wait", "duration_seconds": 1},
                {"id": "bad", "action": "add_note", "body": "{{ entity.no_such_field }}"},
            ],
        },
    )
    m = matter(api)
    (failed,) = settled(api, 1, workflow_id=wf["id"])
    assert failed["state"] == "failed"
    assert failed["wake_at"] is None
    assert (
        failed["error"]
        == "step bad (add_note) failed: body: 'entity.no_such_field' does not exist in the data"
    )
    assert notes(api, m["id"]) == []


def test_an_instance_whose_run_job_died_on_its_last_attempt_fails(
    api: httpx.Client, worker: Worker, clean: Backend
) -> None:
    wf = add_workflow(
        api,
        {
            "name": "chase much later",
            "trigger": {"event": "matter.created"},
            "steps": [
                {"id": "pause", "action": "wait", "duration_seconds": 3600},
                {"id": "chase", "action": "add_note", "body": "Chase"},
            ],
        },
    )
    matter(api)
    (parked,) = wait_for(lambda: [i for i in instances(api, workflow_id=wf["id"]) if i["state"] == "waiting"])
    # The run job was picked up by a worker that was then killed during its last attempt: running,
    # out of attempts, its lease expired.
    with unit_of_work(clean.db.writer) as session:
        job = session.scalars(
            select(Job).where(Job.kind == engine.RUN, Job.args["instance_id"].as_string() == parked["id"])
        ).one()
        job.state, job.attempts, job.locked_by = "running", job.max_attempts, "killed-worker"
        job.locked_until = job.run_at = utcnow() - timedelta(minutes=1)
    worker.maintain()  # (its maintenance thread may get there first: either rescues it once)
    failed = wait_for(
        lambda: next((i for i in [instance(api, parked["id"])] if i["state"] == "failed"), None)
    )
    assert failed["error"].startswith("its run job died after its last attempt: the worker running this job")
    with unit_of_work(clean.db.reader) as session:
        assert session.get(Job, job.id).state == "dead"  # type: ignore[union-attr]

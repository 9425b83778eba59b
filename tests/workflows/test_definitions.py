"""Definitions through the API: precise 422s for bad ones, YAML, versions, and no way to run code."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from casebridge.db.session import unit_of_work
from casebridge.jobs.worker import Worker
from casebridge.kit.context import Role
from casebridge.kit.expressions import ExpressionError, evaluate, render
from casebridge.models import WorkflowVersion
from tests.conftest import Backend, MakeClient
from tests.workflows.conftest import add_workflow, matter, ok, settled

HTTP: dict[str, Any] = {"action": "http", "service": "finance", "path": "/payments"}
NOTE: dict[str, Any] = {"action": "add_note", "body": "noted"}
OPERATORS = "!, !!, !=, %, *, +, -, /, <, <=, ==, >, >=, and, cat, changed, if, in, max, min, missing, or, starts_with, var"
ACTIONS = "add_note, branch, create_activity, http, raise_alert, update_entity, wait"


def definition(steps: list[Any], trigger: Any = None, **extra: Any) -> dict[str, Any]:
    return {"name": "w", "trigger": trigger or {"event": "activity.approved"}, "steps": steps, **extra}


@pytest.fixture
def finance_service(api: httpx.Client) -> None:
    body = {"name": "finance", "base_url": "http://127.0.0.1:9/api", "auth": {"type": "none"}}
    ok(api.post("/api/v1/linked-services", json=body), 201)


BAD: list[tuple[str, Any, str, str]] = [
    (
        "unknown linked service, inside a branch",
        definition([NOTE, {"action": "branch", "condition": True, "then": [{**HTTP, "service": "finanse"}]}]),
        "body.steps.1.then.0.service",
        "no linked service named 'finanse'; linked services: finance",
    ),
    (
        "unknown action",
        definition([{"action": "htp"}]),
        "body.steps.0.action",
        f"unknown action 'htp'; use one of: {ACTIONS}",
    ),
    (
        "duplicate step ids",
        definition([{**NOTE, "id": "a"}, {**NOTE, "id": "a"}]),
        "body.steps.1.id",
        "duplicate step id 'a' (also at body.steps.0.id)",
    ),
    (
        "bad expression",
        definition([NOTE], {"event": "activity.approved", "condition": {"and": [True, {"==": [1]}]}}),
        "body.trigger.condition.and.1.==",
        "'==' takes 2..2 arguments, got 1",
    ),
    (
        "eval is not an operator",
        definition([NOTE], {"event": "activity.approved", "condition": {"eval": "__import__('os')"}}),
        "body.trigger.condition.eval",
        f"unknown operator 'eval'; use one of: {OPERATORS}",
    ),
    (
        "code in a template",
        definition([{**NOTE, "body": "{{ __import__('os').system('id') }}"}]),
        "body.steps.0.body",
        "'{{ __import__('os').system('id') }}' is not a dotted path such as entity.title",
    ),
    (
        "template outside the data",
        definition([{**HTTP, "body": {"home": "{{ os.environ.HOME }}"}}]),
        "body.steps.0.body.home",
        "the template reads 'os.environ.HOME': it must start with one of event, entity, vars, workflow, instance",
    ),
    (
        "attribute-style path",
        definition([{**NOTE, "body": "{{ entity.__class__.__init__.__globals__ }}"}]),
        "body.steps.0.body",
        "the template reads 'entity.__class__.__init__.__globals__': paths name data fields, never '__' attributes",
    ),
    (
        "unknown event type",
        definition([NOTE], {"event": "activity.aproved"}),
        "body.trigger.event",
        "unknown event type 'activity.aproved'; activity events are: activity.approved, activity.billed, "
        "activity.created, activity.deleted, activity.rejected, activity.submitted, activity.updated",
    ),
    (
        "unknown event prefix in a list",
        definition([NOTE], {"event": ["matter.*", "invoice.*"]}),
        "body.trigger.event.1",
        "unknown event prefix 'invoice'; workflows can trigger on: activity, alert, contact, document, matter, "
        "settings, user",
    ),
    (
        "workflow events cannot trigger workflows",
        definition([NOTE], {"event": "workflow_instance.failed"}),
        "body.trigger.event",
        "workflows cannot trigger on workflow_instance events",
    ),
    (
        "wait without a time",
        definition([{"action": "wait"}]),
        "body.steps.0",
        "a wait step needs duration_seconds or until",
    ),
    (
        "http without path",
        definition([{"action": "http", "service": "finance"}]),
        "body.steps.0.path",
        "an http step needs 'path'",
    ),
    (
        "misspelt field",
        definition([{**HTTP, "servce": "x"}]),
        "body.steps.0.servce",
        "unknown field 'servce' in an http step",
    ),
    (
        "variable nobody sets",
        definition([HTTP, {**NOTE, "body": "paid {{ vars.payment }}"}]),
        "body.steps.1.body",
        "no step sets a variable named 'payment' (variables come from an http step's capture or a step's save_as)",
    ),
    (
        "field a workflow cannot update",
        definition([{"action": "update_entity", "field": "state", "value": "billed"}]),
        "body.steps.0.field",
        "activity has no updatable field 'state'; use one of: amount, category, date, description, "
        "duration_seconds, flat_fee, matter_id, rate, supplier_id, user_id",
    ),
    (
        "absolute URL as path",
        definition([{**HTTP, "path": "https://elsewhere.example/steal"}]),
        "body.steps.0.path",
        "the path is relative to the linked service's base URL; it cannot name a host",
    ),
    (
        "capture outside the response",
        definition([{**HTTP, "capture": {"id": "body.id"}}]),
        "body.steps.0.capture.id",
        "'body.id' is not a path into the response such as response.body.id",
    ),
    (
        "note for an event without a matter",
        definition([NOTE], {"event": "contact.created"}),
        "body.steps.0.matter_id",
        "the trigger's contact events have no matter: say which with matter_id",
    ),
    (
        "wait with an unreadable time",
        definition([{"action": "wait", "until": "tomorrow"}]),
        "body.steps.0.until",
        "'tomorrow' is not an ISO 8601 time nor a template",
    ),
    ("not an object", [NOTE], "body", "a workflow definition is an object with name, trigger and steps"),
]


@pytest.mark.parametrize(("raw", "field", "message"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_definitions_are_refused_with_the_exact_path(
    api: httpx.Client, finance_service: None, raw: Any, field: str, message: str
) -> None:
    r = api.post("/api/v1/workflows", json=raw)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["type"] == "/problems/validation"
    assert body["detail"] == "The workflow definition is invalid; see errors."
    assert [(e["field"], e["message"]) for e in body["errors"]] == [(field, message)]
    assert ok(api.get("/api/v1/workflows"))["data"] == []


def test_every_problem_is_reported_at_once(api: httpx.Client) -> None:
    raw = {
        "trigger": {"event": "activity.approved", "condition": {"nope": 1}},
        "steps": [
            {"action": "wait"},
            {"action": "http", "service": "ghost", "path": "/x"},
            {"action": "raise_alert"},
        ],
    }
    errors = api.post("/api/v1/workflows", json=raw).json()["errors"]
    assert [e["field"] for e in errors] == [
        "body.name",
        "body.trigger.condition.nope",
        "body.steps.0",
        "body.steps.1.service",
        "body.steps.2.message",
    ]
    assert (
        errors[3]["message"]
        == "no linked service named 'ghost'; there are no linked services yet (POST /api/v1/linked-services)"
    )


def test_yaml_is_accepted_and_means_the_same_as_json(api: httpx.Client) -> None:
    text = """
name: approvals
trigger:
  event: activity.approved
  condition: {">": [{var: entity.total.amount}, 100]}
steps:
  - id: alert
    action: raise_alert
    severity: info
    message: "Approved {{ entity.total.amount }}"
"""
    made = ok(api.post("/api/v1/workflows", content=text, headers={"Content-Type": "application/yaml"}), 201)
    assert made["version"] == 1
    assert made["definition"]["trigger"] == {
        "event": ["activity.approved"],
        "condition": {">": [{"var": "entity.total.amount"}, 100]},
    }
    assert made["definition"]["steps"][0]["message"] == "Approved {{ entity.total.amount }}"

    r = api.post("/api/v1/workflows", content="name: [unclosed", headers={"Content-Type": "text/yaml"})
    assert r.status_code == 422
    (error,) = r.json()["errors"]
    assert error["field"] == "body"
    assert error["message"].startswith("invalid YAML at line 1 column 16:")
    r = api.post("/api/v1/workflows", content='{"name": "x",', headers={"Content-Type": "application/json"})
    assert (
        r.json()["errors"][0]["message"]
        == "invalid JSON at line 1 column 14: Expecting property name enclosed in double quotes"
    )
    r = api.post("/api/v1/workflows", content="name: x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert r.json()["type"] == "/problems/unsupported-media-type"


def test_yaml_cannot_build_python_objects_nor_expand_aliases(api: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = f"!!python/object/apply:os.system ['touch {marker}']"
    r = api.post("/api/v1/workflows", content=evil, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 422
    assert "could not determine a constructor" in r.json()["errors"][0]["message"]
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"
    r = api.post("/api/v1/workflows", content=bomb, headers={"Content-Type": "application/yaml"})
    assert r.status_code == 422
    assert "YAML aliases (*name) are not accepted" in r.json()["errors"][0]["message"]
    assert not marker.exists()


def test_expressions_and_templates_are_data_lookups_only(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data: dict[str, Any] = {"entity": {"title": "x"}}
    code = f"{{{{ __import__('os').system('touch {marker}') }}}}"
    with pytest.raises(ExpressionError):
        render(code, data)
    with pytest.raises(ExpressionError):
        render("{{ entity.__class__.__init__.__globals__ }}", data)
    assert evaluate({"var": "entity.__class__.__mro__"}, data) is None
    with pytest.raises(ExpressionError):
        evaluate({"eval": f"open('{marker}', 'w')"}, data)
    assert not marker.exists()


def test_a_tampered_stored_definition_is_still_inert(
    api: httpx.Client, clean: Backend, worker: Worker, tmp_path: Path
) -> None:
    """Even a definition that skipped validation (written straight into the table) only looks up data."""
    marker = tmp_path / "pwned"
    wf = add_workflow(
        api, {"name": "tampered", "trigger": {"event": "matter.created"}, "steps": [{"id": "n", **NOTE}]}
    )
    with unit_of_work(clean.db.writer) as session:
        row = session.scalar(
            select(WorkflowVersion).where(WorkflowVersion.workflow_id == uuid.UUID(wf["id"]))
        )
        assert row is not None
        steps = [
            {"id": "n", "action": "add_note", "body": f"{{{{ __import__('os').system('touch {marker}') }}}}"}
        ]
        row.definition = {**row.definition, "steps": steps}
    m = matter(api)
    (failed,) = settled(api, 1, workflow_id=wf["id"])
    assert failed["state"] == "failed"
    assert "does not exist in the data" in failed["error"]
    assert not marker.exists()
    assert ok(api.get(f"/api/v1/matters/{m['id']}/notes"))["data"] == []


def test_validate_normalises_without_storing(api: httpx.Client, finance_service: None) -> None:
    raw = definition(
        [
            {**HTTP, "capture": {"pid": "response.body.id"}},
            {"action": "update_entity", "field": "description", "value": "paid {{ vars.pid }}"},
        ]
    )
    out = ok(api.post("/api/v1/workflows/validate", json=raw))
    assert out["valid"] is True
    http, update = out["definition"]["steps"]
    assert (http["id"], http["method"], http["max_attempts"], http["retry_delay_seconds"]) == (
        "steps_0",
        "POST",
        5,
        10.0,
    )
    assert (update["id"], update["fields"]) == ("steps_1", {"description": "paid {{ vars.pid }}"})
    assert ok(api.get("/api/v1/workflows"))["data"] == []
    assert api.post("/api/v1/workflows/validate", json={**raw, "steps": []}).status_code == 422


def test_versions_names_and_concurrency(api: httpx.Client, make_client: MakeClient) -> None:
    v1 = definition([NOTE], name="notes")
    made = ok(api.post("/api/v1/workflows", json=v1), 201)
    wid = made["id"]
    assert api.post("/api/v1/workflows", json=v1).status_code == 409
    same = ok(api.put(f"/api/v1/workflows/{wid}", json=v1))
    assert same["version"] == 1  # nothing changed: no new version
    v2 = ok(api.put(f"/api/v1/workflows/{wid}", json={**v1, "steps": [{**NOTE, "body": "v2"}]}))
    assert v2["version"] == 2
    paused = ok(api.patch(f"/api/v1/workflows/{wid}", json={"active": False}))
    assert (paused["version"], paused["active"]) == (2, False)
    v3 = ok(
        api.patch(
            f"/api/v1/workflows/{wid}",
            json={"single_instance_per_entity": True, "name": "notes v3"},
            headers={"If-Match": paused["etag"]},
        )
    )
    assert (v3["version"], v3["name"], v3["definition"]["single_instance_per_entity"]) == (
        3,
        "notes v3",
        True,
    )
    stale = api.patch(f"/api/v1/workflows/{wid}", json={"active": True}, headers={"If-Match": paused["etag"]})
    assert stale.status_code == 412
    bad = api.patch(f"/api/v1/workflows/{wid}", json={"steps": [{"action": "wait"}]})
    assert [e["field"] for e in bad.json()["errors"]] == ["body.steps.0"]
    versions = ok(api.get(f"/api/v1/workflows/{wid}/versions"))["data"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert ok(api.get(f"/api/v1/workflows/{wid}/versions/1"))["definition"]["steps"][0]["body"] == "noted"
    assert api.get(f"/api/v1/workflows/{wid}/versions/9").status_code == 404
    events = ok(api.get("/api/v1/events", params={"type": "workflow.*"}))["data"]
    assert [e["type"] for e in events] == [
        "workflow.created",
        "workflow.updated",
        "workflow.updated",
        "workflow.updated",
    ]
    assert events[-1]["changes"]["version"] == {"old": 2, "new": 3}

    # Integrations read workflows; only admins change them.
    integration = make_client(Role.INTEGRATION)
    assert ok(integration.get(f"/api/v1/workflows/{wid}"))["version"] == 3
    assert integration.put(f"/api/v1/workflows/{wid}", json=v1).status_code == 403
    assert make_client(Role.STAFF).get("/api/v1/workflows").status_code == 403

    assert api.delete(f"/api/v1/workflows/{wid}").status_code == 204
    assert api.get(f"/api/v1/workflows/{wid}").status_code == 404
    assert json.dumps(
        ok(api.get("/api/v1/events", params={"type": "workflow.deleted"}))["data"][0]["changes"]
    )

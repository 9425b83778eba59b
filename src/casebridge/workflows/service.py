"""Workflow rules: definitions parsed (JSON or YAML) and validated, versions, the event subscription,
cancel and retry, and the inspector.

Every change of the definition makes a new version (instances keep the version they started with);
``active`` is not part of a version. Events: ``workflow.created`` / ``.updated`` / ``.deleted`` (name,
active, version) and ``workflow_instance.started`` / ``.completed`` / ``.failed`` / ``.cancelled`` /
``.retried`` (raised by the engine and by cancel and retry).
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

import yaml
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from casebridge.db.types import utcnow
from casebridge.events import diff, record_event
from casebridge.events.delivery import subscribe
from casebridge.events.outbox import subscribers_changed
from casebridge.events.schemas import EventOut
from casebridge.kit.context import Principal
from casebridge.kit.problems import Problem, conflict, field_error, not_found, validation
from casebridge.linked_services import repository as linked_services
from casebridge.models import Event, EventSubscription, Workflow, WorkflowInstance, WorkflowVersion
from casebridge.workflows import engine, repository
from casebridge.workflows.definition import check, matches_any, patterns_of
from casebridge.workflows.schemas import InspectionItem, InspectionOut, InstanceSummary, StepSummary

ENTITY = "workflow"
SUBSCRIPTION = "workflows"
MAX_BODY_BYTES = 512 * 1024
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


# --- parsing ---------------------------------------------------------------------------------------------


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: ``*ref`` could expand a small document enormously."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not accepted", mark)
        return super().compose_node(parent, index)


def _jsonable(value: Any) -> Any:
    """YAML's dates and non-string keys as JSON has them."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _bad_body(message: str) -> Problem:
    return validation([field_error("body", message, "invalid_body")])


def parse_body(raw: bytes, content_type: str | None) -> Any:
    """The request body as data: JSON, or YAML with a YAML content type (415 for anything else)."""
    media = (content_type or "application/json").split(";", 1)[0].strip().lower()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, f"A workflow definition is at most {MAX_BODY_BYTES // 1024} KiB.")
    if not raw.strip():
        raise validation([field_error("body", "send a workflow definition (JSON or YAML)", "missing")])
    if media in YAML_TYPES:
        try:
            # A SafeLoader subclass: plain data only, never Python objects.
            return _jsonable(yaml.load(raw, Loader=_NoAliasLoader))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise _bad_body(f"invalid YAML{where}: {problem}") from None
    if media in JSON_TYPES or media.endswith("+json"):
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if isinstance(exc, json.JSONDecodeError):
                raise _bad_body(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
            raise _bad_body("the body is not UTF-8") from None
    raise Problem(
        415,
        f"Send the workflow definition as application/json or application/yaml, not {media}.",
        slug="unsupported-media-type",
    )


# --- reads -----------------------------------------------------------------------------------------------


def get_or_404(session: Session, workflow_id: uuid.UUID) -> Workflow:
    workflow = repository.get(session, workflow_id)
    if workflow is None:
        raise not_found("workflow", workflow_id)
    return workflow


def current_version(session: Session, workflow: Workflow) -> WorkflowVersion:
    row = repository.version(session, workflow.id, workflow.current_version)
    assert row is not None, "a workflow always has its current version"
    return row


def instance_or_404(
    session: Session, instance_id: uuid.UUID, *, for_update: bool = False
) -> WorkflowInstance:
    inst = repository.instance(session, instance_id, for_update=for_update)
    if inst is None:
        raise not_found("workflow instance", instance_id)
    return inst


# --- writes ----------------------------------------------------------------------------------------------


def validate_definition(session: Session, raw: Any) -> dict[str, Any]:
    definition, errors = check(raw, services=linked_services.names(session))
    if errors:
        raise validation(errors, "The workflow definition is invalid; see errors.")
    assert definition is not None
    return definition


def _active_of(raw: Any) -> bool | None:
    value = raw.get("active") if isinstance(raw, dict) else None
    return value if isinstance(value, bool) else None


def _unique_name(session: Session, name: str, other_than: Workflow | None = None) -> None:
    found = repository.by_name(session, name)
    if found is not None and found is not other_than:
        raise conflict(f"A workflow named '{name}' already exists.")


def ensure_subscription(session: Session) -> None:
    """The one ``workflows`` event subscription, made with the first workflow."""
    sub = session.scalar(select(EventSubscription).where(EventSubscription.name == SUBSCRIPTION))
    if sub is None:
        subscribe(session, name=SUBSCRIPTION, kind=SUBSCRIPTION)
    elif not sub.active:
        sub.active = True
    # Forget the cached "no subscribers" answer once this commits, too (not only now).
    sa_event.listen(session, "after_commit", lambda _s: subscribers_changed(), once=True)


def _snapshot(workflow: Workflow) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "description": workflow.description,
        "active": workflow.active,
        "version": workflow.current_version,
    }


def create(session: Session, principal: Principal, raw: Any) -> tuple[Workflow, WorkflowVersion]:
    definition = validate_definition(session, raw)
    _unique_name(session, definition["name"])
    active = _active_of(raw)
    workflow = Workflow(
        name=definition["name"],
        description=definition.get("description"),
        active=True if active is None else active,
        current_version=1,
    )
    session.add(workflow)
    session.flush()
    version = WorkflowVersion(
        workflow_id=workflow.id,
        version=1,
        definition=definition,
        created_by=principal.name,
        created_at=utcnow(),
    )
    session.add(version)
    ensure_subscription(session)
    session.flush()
    record_event(session, f"{ENTITY}.created", ENTITY, workflow.id, diff({}, _snapshot(workflow)))
    return workflow, version


def _apply(
    session: Session,
    principal: Principal,
    workflow: Workflow,
    definition: dict[str, Any],
    active: bool | None,
) -> tuple[Workflow, WorkflowVersion]:
    before = _snapshot(workflow)
    current = current_version(session, workflow)
    version = current
    if definition != current.definition:
        if definition["name"] != workflow.name:
            _unique_name(session, definition["name"], workflow)
        version = WorkflowVersion(
            workflow_id=workflow.id,
            version=workflow.current_version + 1,
            definition=definition,
            created_by=principal.name,
            created_at=utcnow(),
        )
        session.add(version)
        workflow.current_version = version.version
        workflow.name = definition["name"]
        workflow.description = definition.get("description")
    if active is not None and active != workflow.active:
        workflow.active = active
        if active:
            ensure_subscription(session)
    changes = diff(before, _snapshot(workflow))
    if changes:
        workflow.updated_at = utcnow()
        session.flush()
        record_event(session, f"{ENTITY}.updated", ENTITY, workflow.id, changes)
    return workflow, version


def replace(
    session: Session, principal: Principal, workflow: Workflow, raw: Any
) -> tuple[Workflow, WorkflowVersion]:
    """PUT: the whole definition; a new version when it differs from the current one."""
    return _apply(session, principal, workflow, validate_definition(session, raw), _active_of(raw))


def patch(
    session: Session, principal: Principal, workflow: Workflow, raw: Any
) -> tuple[Workflow, WorkflowVersion]:
    """PATCH: top-level keys replace the current definition's (`steps` is replaced whole); `active`
    alone changes no version."""
    if not isinstance(raw, dict):
        raise validation([field_error("body", "send an object with the top-level keys to change", "type")])
    merged = {
        **current_version(session, workflow).definition,
        **{k: v for k, v in raw.items() if k != "active"},
    }
    if "active" in raw and not isinstance(raw["active"], bool):
        raise validation([field_error("body.active", "active must be true or false", "bool_type")])
    return _apply(session, principal, workflow, validate_definition(session, merged), _active_of(raw))


def delete(session: Session, workflow: Workflow) -> None:
    """Delete the workflow with its versions, instances and their logs (events keep the history)."""
    before = _snapshot(workflow)
    workflow_id = workflow.id
    session.delete(workflow)
    session.flush()
    record_event(session, f"{ENTITY}.deleted", ENTITY, workflow_id, diff(before, {}))


def _invalid_state(inst: WorkflowInstance, verb: str, allowed: str) -> Problem:
    return Problem(
        409,
        f"Cannot {verb} this instance: it is {inst.state}; only {allowed} instances can be {verb}ed.",
        slug="invalid-state",
        extra={"state": inst.state},
    )


def cancel(session: Session, inst: WorkflowInstance) -> WorkflowInstance:
    if inst.state not in repository.LIVE_STATES:
        raise _invalid_state(inst, "cancel", "running or waiting")
    old = inst.state
    inst.state = "cancelled"
    inst.wake_at = None
    session.flush()
    engine.instance_event(session, inst, "cancelled", old)
    return inst


def retry(session: Session, inst: WorkflowInstance) -> WorkflowInstance:
    """Resume a failed instance at the step that failed, with fresh attempts."""
    if inst.state != "failed":
        raise _invalid_state(inst, "retry", "failed")
    old, error = inst.state, inst.error
    inst.state = "running"
    inst.error = None
    session.flush()
    engine.enqueue_run(session, inst.id)
    engine.instance_event(session, inst, "retried", old, previous_error=error)
    return inst


# --- the inspector ---------------------------------------------------------------------------------------


def inspect(session: Session, event_id: int) -> InspectionOut:
    """For one event: every workflow, whether it matched and why, and what its instance did."""
    row = session.get(Event, event_id)
    if row is None:
        raise not_found("event", event_id)
    event = EventOut.of(row)
    evaluations = repository.evaluations_for_event(session, event_id)
    instance_ids = [e.instance_id for e in evaluations.values() if e.instance_id is not None]
    instances = {
        i.id: i
        for i in session.scalars(select(WorkflowInstance).where(WorkflowInstance.id.in_(instance_ids)))
    }
    logs = repository.step_logs_for(session, list(instances))
    items: list[InspectionItem] = []
    for workflow, version in repository.current_definitions(session, active_only=False):
        found = evaluations.get(workflow.id)
        summary = None
        if found is not None:
            inst = instances.get(found.instance_id) if found.instance_id else None
            if inst is not None:
                summary = InstanceSummary(
                    id=inst.id,
                    state=inst.state,
                    error=inst.error,
                    steps=[
                        StepSummary(step_id=s.step_id, action=s.action, status=s.status, error=s.error)
                        for s in logs[inst.id]
                    ],
                )
            items.append(
                InspectionItem(
                    workflow_id=workflow.id,
                    workflow_name=workflow.name,
                    workflow_version=found.workflow_version,
                    active=workflow.active,
                    evaluated=True,
                    matched=found.matched,
                    reason=found.reason,
                    evaluated_at=found.created_at,
                    instance=summary,
                )
            )
            continue
        patterns = patterns_of(version.definition.get("trigger") or {})
        if workflow.created_at > event.occurred_at:
            reason = "not evaluated: the workflow was created after this event"
        elif not matches_any(patterns, event.type):
            reason = f"event type {event.type} does not match trigger {', '.join(patterns)}"
        elif not workflow.active:
            reason = "not evaluated: the workflow is inactive"
        else:
            reason = "not evaluated yet: the event is still being delivered to the workflow engine"
        items.append(
            InspectionItem(
                workflow_id=workflow.id,
                workflow_name=workflow.name,
                workflow_version=version.version,
                active=workflow.active,
                evaluated=False,
                matched=False,
                reason=reason,
                evaluated_at=None,
                instance=None,
            )
        )
    return InspectionOut(event=event, workflows=items)

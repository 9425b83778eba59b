"""What workflow steps do: the record-changing actions (run inside the engine's transaction, through the
same domain services the API uses, as the workflow's own integration principal) and the preparation of
HTTP calls (templates rendered, the linked service's credentials decrypted) that the engine then sends
with no transaction open.

Each action returns ``(input, output)`` for the step log; a failure raises :class:`StepFailed` with a
message a person can act on (the domain's validation errors are listed field by field).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from casebridge.activities import repository as activities_repo
from casebridge.activities import service as activities
from casebridge.activities.schemas import ActivityCreate, ActivityOut, ActivityUpdate
from casebridge.alerts import service as alerts
from casebridge.alerts.schemas import AlertOut
from casebridge.contacts import repository as contacts_repo
from casebridge.contacts import service as contacts
from casebridge.contacts.schemas import ContactOut, ContactUpdate
from casebridge.documents import repository as documents_repo
from casebridge.documents.schemas import DocumentOut
from casebridge.kit.context import Principal, Role
from casebridge.kit.crypto import SecretBox, SecretDecryptionError
from casebridge.kit.expressions import ExpressionError, lookup, render
from casebridge.kit.problems import Problem
from casebridge.linked_services import repository as linked_services
from casebridge.linked_services.client import ServiceConfig
from casebridge.matters import repository as matters_repo
from casebridge.matters import service as matters
from casebridge.matters.schemas import MatterOut, MatterUpdate
from casebridge.models import Alert
from casebridge.users import repository as users_repo
from casebridge.users.schemas import UserOut

SYSTEM_TOKEN_ID = uuid.UUID(int=0)
_PLACEHOLDER_PATH = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")  # kit.expressions' template syntax


class StepFailed(Exception):
    """The step cannot succeed as it stands; the instance fails (and can be retried after a fix)."""

    def __init__(self, message: str, step_input: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.step_input = step_input


def principal_for(workflow_name: str) -> Principal:
    """The actor of everything a workflow does: an integration, named after the workflow."""
    return Principal(token_id=SYSTEM_TOKEN_ID, name=f"workflow:{workflow_name}", role=Role.INTEGRATION)


# --- the entity's current state -------------------------------------------------------------------------


def load_entity(session: Session, entity_type: str, entity_id: str) -> dict[str, Any] | None:
    """The entity's public representation (what GET returns), or None when it is gone or not a record."""
    try:
        key = uuid.UUID(entity_id)
    except ValueError:
        return None
    out: Any = None
    if entity_type == "matter":
        row = matters_repo.get(session, key)
        out = MatterOut.of(row) if row else None
    elif entity_type == "activity":
        a = activities_repo.get(session, key)
        out = ActivityOut.of(a) if a else None
    elif entity_type == "contact":
        c = contacts_repo.get(session, key)
        out = ContactOut.of(c) if c else None
    elif entity_type == "document":
        d = documents_repo.get(session, key)
        out = DocumentOut.of(d) if d else None
    elif entity_type == "user":
        u = users_repo.get(session, key)
        out = UserOut.of(u) if u else None
    elif entity_type == "alert":
        al = session.get(Alert, key)
        out = AlertOut.of(al) if al else None
    return out.model_dump(mode="json") if out is not None else None


# --- helpers ----------------------------------------------------------------------------------------------


def problem_text(problem: Problem) -> str:
    text = problem.detail
    if problem.errors:
        text += " " + "; ".join(f"{e['field'].removeprefix('body.')}: {e['message']}" for e in problem.errors)
    return text


def validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p not in ("time", "expense"))
        parts.append(f"{loc}: {str(err['msg']).removeprefix('Value error, ')}" if loc else str(err["msg"]))
    return "; ".join(parts)


def fill(value: Any, data: dict[str, Any], what: str) -> Any:
    try:
        return render(value, data)
    except ExpressionError as exc:
        raise StepFailed(f"{what}: {exc.message}") from None


def fill_path(path: str, data: dict[str, Any]) -> str:
    """A URL path template: each placeholder's value is percent-encoded, so data cannot change the path's
    shape (no '/', '?' or '#' smuggled in from a record)."""

    def one(m: Any) -> str:
        try:
            value = lookup(data, m.group(1))
        except ExpressionError as exc:
            raise StepFailed(f"path: {exc.message}") from None
        return quote("" if value is None else str(value), safe="")

    return str(_PLACEHOLDER_PATH.sub(one, path))


def _uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise StepFailed(f"{what}: {value!r} is not an id") from None


def matter_of(
    step: dict[str, Any], data: dict[str, Any], entity_type: str, entity_id: str
) -> uuid.UUID | None:
    if step.get("matter_id") is not None:
        return _uuid(fill(step["matter_id"], data, "matter_id"), "matter_id")
    if entity_type == "matter":
        return _uuid(entity_id, "matter_id")
    entity = data.get("entity") or {}
    if entity_type in ("activity", "document") and entity.get("matter_id"):
        return _uuid(entity["matter_id"], "matter_id")
    return None


# --- record-changing actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    session: Session
    principal: Principal
    entity_type: str
    entity_id: str
    data: dict[str, Any]


_UPDATES: dict[str, Any] = {"contact": ContactUpdate, "matter": MatterUpdate, "activity": ActivityUpdate}
_ACTIVITY_CREATE: TypeAdapter[Any] = TypeAdapter(ActivityCreate)


def update_entity(ctx: Context, step: dict[str, Any]) -> tuple[Any, Any]:
    entity_type = step.get("entity_type") or ctx.entity_type
    entity_id = (
        str(fill(step["entity_id"], ctx.data, "entity_id")) if step.get("entity_id") else ctx.entity_id
    )
    fields = fill(step["fields"], ctx.data, "fields")
    step_input = {"entity_type": entity_type, "entity_id": entity_id, "fields": fields}
    model = _UPDATES.get(entity_type)
    if model is None:
        raise StepFailed(f"a workflow cannot update a {entity_type}", step_input)
    try:
        update = model.model_validate(fields)
    except ValidationError as exc:
        raise StepFailed(f"invalid {entity_type} fields: {validation_text(exc)}", step_input) from None
    key = _uuid(entity_id, "entity_id")
    try:
        if entity_type == "matter":
            matters.update(ctx.session, ctx.principal, matters.get_or_404(ctx.session, key), update)
        elif entity_type == "contact":
            contacts.update(ctx.session, ctx.principal, contacts.get_or_404(ctx.session, key), update)
        else:
            activities.update(ctx.session, ctx.principal, activities.get_or_404(ctx.session, key), update)
    except Problem as problem:
        raise StepFailed(problem_text(problem), step_input) from None
    return step_input, {"updated": sorted(fields)}


def create_activity(ctx: Context, step: dict[str, Any]) -> tuple[Any, Any]:
    body = fill(step["activity"], ctx.data, "activity")
    try:
        data = _ACTIVITY_CREATE.validate_python(body)
    except ValidationError as exc:
        raise StepFailed(f"invalid activity: {validation_text(exc)}", body) from None
    try:
        activity = activities.create(ctx.session, ctx.principal, data)
    except Problem as problem:
        raise StepFailed(problem_text(problem), body) from None
    return body, {"id": str(activity.id), "kind": activity.kind, "state": activity.state}


def add_note(ctx: Context, step: dict[str, Any]) -> tuple[Any, Any]:
    text = fill(step["body"], ctx.data, "body")
    text = text if isinstance(text, str) else str(text)
    matter_id = matter_of(step, ctx.data, ctx.entity_type, ctx.entity_id)
    step_input = {"matter_id": str(matter_id) if matter_id else None, "body": text}
    if matter_id is None:
        raise StepFailed(f"a note needs a matter: a {ctx.entity_type} has none; set matter_id", step_input)
    try:
        note = alerts.add_note(ctx.session, matter_id, text, ctx.principal.name)
    except Problem as problem:
        raise StepFailed(problem_text(problem), step_input) from None
    return step_input, {"id": str(note.id)}


def raise_alert(ctx: Context, step: dict[str, Any]) -> tuple[Any, Any]:
    message = fill(step["message"], ctx.data, "message")
    message = message if isinstance(message, str) else str(message)
    matter_id = matter_of(step, ctx.data, ctx.entity_type, ctx.entity_id)
    step_input = {
        "matter_id": str(matter_id) if matter_id else None,
        "severity": step["severity"],
        "message": message,
    }
    try:
        alert = alerts.raise_alert(
            ctx.session,
            matter_id=matter_id,
            entity_type=ctx.entity_type,
            entity_id=ctx.entity_id,
            severity=str(step["severity"]),
            message=message,
            source=ctx.principal.name,
        )
    except Problem as problem:
        raise StepFailed(problem_text(problem), step_input) from None
    return step_input, {"id": str(alert.id)}


RECORD_ACTIONS = {
    "update_entity": update_entity,
    "create_activity": create_activity,
    "add_note": add_note,
    "raise_alert": raise_alert,
}


# --- waits -------------------------------------------------------------------------------------------------


def wake_time(step: dict[str, Any], data: dict[str, Any], now: datetime) -> datetime:
    if step.get("duration_seconds") is not None:
        return now + timedelta(seconds=int(step["duration_seconds"]))
    value = fill(step["until"], data, "until")
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        raise StepFailed(f"until: {value!r} is not an ISO 8601 time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


# --- HTTP --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedCall:
    config: ServiceConfig
    method: str
    path: str
    query: dict[str, Any] | None
    headers: dict[str, str]
    body: Any
    capture: dict[str, str]
    expect_status: list[int] | None
    max_attempts: int
    retry_delay: float


def prepare_http(
    session: Session, box: SecretBox | None, step: dict[str, Any], data: dict[str, Any], idempotency_key: str
) -> PreparedCall:
    name = str(step["service"])
    row = linked_services.by_name(session, name)
    if row is None:
        raise StepFailed(
            f"no linked service named '{name}' (deleted or renamed since the workflow was saved)"
        )
    if box is None:
        raise StepFailed("this worker has no settings, so it cannot decrypt the linked service's secret")
    try:
        config = ServiceConfig.of(row, box)
    except SecretDecryptionError as exc:
        raise StepFailed(str(exc)) from None
    path = fill_path(str(step["path"]), data)
    query = fill(step.get("query"), data, "query") if step.get("query") is not None else None
    headers = {str(k): str(v) for k, v in (fill(step.get("headers") or {}, data, "headers")).items()}
    headers.setdefault("Idempotency-Key", idempotency_key)
    body = fill(step.get("body"), data, "body") if step.get("body") is not None else None
    return PreparedCall(
        config=config,
        method=str(step.get("method", "POST")),
        path=path,
        query=query,
        headers=headers,
        body=body,
        capture=dict(step.get("capture") or {}),
        expect_status=step.get("expect_status"),
        max_attempts=int(step.get("max_attempts", 5)),
        retry_delay=float(step.get("retry_delay_seconds", 10.0)),
    )

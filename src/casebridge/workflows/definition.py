"""Workflow definitions: the format, its validation with exact paths, and helpers the engine shares.

A definition is JSON (or YAML) data::

    {"name": "pay approved expenses",
     "trigger": {"event": "activity.approved",
                 "condition": {"==": [{"var": "entity.kind"}, "expense"]}},
     "single_instance_per_entity": true,
     "steps": [
       {"id": "pay", "action": "http", "service": "finance", "method": "POST", "path": "/payments",
        "body": {"reference": "{{ entity.id }}", "amount": "{{ entity.total.amount }}"},
        "capture": {"payment_id": "response.body.id"}},
       {"action": "add_note", "body": "Paid by finance as {{ vars.payment_id }}"}]}

``check`` validates such data and reports *every* problem as a field error at its exact path
(``body.steps.1.then.0.service``), then returns the normalised definition that is stored: step ids filled
in, defaults made explicit, ``field``/``value`` of ``update_entity`` folded into ``fields``. The engine
reads only normalised definitions.

Nothing in a definition is ever executed as code: conditions are JSON-logic interpreted by
:mod:`casebridge.kit.expressions`, templates are ``{{ dotted.path }}`` lookups into plain data.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, ValidationError

from casebridge.activities.schemas import ActivityUpdate
from casebridge.contacts.schemas import ContactUpdate
from casebridge.events.catalogue import WORKFLOW_TRIGGERS
from casebridge.kit import expressions
from casebridge.kit.problems import field_error
from casebridge.kit.schemas import StrictModel
from casebridge.matters.schemas import MatterUpdate

# --- the event catalogue (docs/events.md) -----------------------------------------------------------

EVENT_TYPES = WORKFLOW_TRIGGERS
"""Event types a workflow may trigger on, and the entity each is about (see events/catalogue.py)."""

PREFIXES: dict[str, str] = {t.split(".", 1)[0]: e for t, e in EVENT_TYPES.items()}

# Entities a step may change with update_entity, and the fields it may set (the PATCH body's fields).
UPDATABLE: dict[str, frozenset[str]] = {
    "contact": frozenset(ContactUpdate.model_fields),
    "matter": frozenset(MatterUpdate.model_fields),
    "activity": frozenset(ActivityUpdate.model_fields),
}
# Entities whose matter is known: the matter itself, or its matter_id.
HAS_MATTER = frozenset({"matter", "activity", "document"})

ROOTS = ("event", "entity", "vars", "workflow", "instance")
"""What conditions and templates can read: the event, the entity's current state, the instance's
variables, the workflow's name and version, and the instance's id."""

MAX_STEPS = 100
MAX_BRANCH_DEPTH = 5
MAX_WAIT_SECONDS = 366 * 24 * 3600
ACTIONS = ("add_note", "branch", "create_activity", "http", "raise_alert", "update_entity", "wait")

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")  # the same syntax as kit.expressions templates
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_STEP_ID = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

StepId = Annotated[str, StringConstraints(pattern=_STEP_ID)]
VarName = Annotated[str, StringConstraints(pattern=_VAR_NAME.pattern)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=20000)]


# --- the models ---------------------------------------------------------------------------------------


class TriggerDef(StrictModel):
    event: str | list[str] = Field(
        description="An event type (`activity.approved`), a prefix pattern (`matter.*`), `*`, or a list.",
        examples=["activity.approved"],
    )
    condition: Any = Field(
        default=None,
        description="JSON-logic over {event, entity}; the workflow starts only when it is true.",
        examples=[{">": [{"var": "entity.total.amount"}, 1000]}],
    )


class StepBase(StrictModel):
    id: StepId | None = Field(default=None, description="Unique in the workflow; defaults to its path.")
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None


class HttpStep(StepBase):
    """Call a linked service. `path`, `query`, `headers` and `body` are templates. The response is
    `{status, headers, body}`; `capture` copies parts of it into variables."""

    action: Literal["http"]
    service: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    query: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    body: Any = None
    capture: dict[VarName, str] = Field(
        default_factory=dict,
        description="Variable name -> path into the response, e.g. `response.body.id`.",
        examples=[{"payment_id": "response.body.id"}],
    )
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(
        default=None, description="Statuses that count as success; default any 2xx."
    )
    max_attempts: Annotated[int, Field(ge=1, le=20)] = Field(
        default=5, description="Tries for network errors, 5xx and 429 before the instance fails."
    )
    retry_delay_seconds: Annotated[float, Field(ge=0, le=3600)] = Field(
        default=10.0, description="Base of the exponential backoff between tries."
    )


class UpdateEntityStep(StepBase):
    """Change fields of a contact, matter or activity (as its PATCH would). Defaults to the event's
    entity; `entity_type` with `entity_id` (a template) names another."""

    action: Literal["update_entity"]
    entity_type: Literal["contact", "matter", "activity"] | None = None
    entity_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    field: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    value: Any = None
    fields: dict[str, Any] | None = None


class CreateActivityStep(StepBase):
    """Record a time entry or expense: `activity` is the POST /activities body, as a template."""

    action: Literal["create_activity"]
    activity: dict[str, Any]
    save_as: VarName | None = Field(default=None, description="Store the new activity's id in this variable.")


class AddNoteStep(StepBase):
    """Add a note to a matter's history: the event's matter unless `matter_id` (a template) says."""

    action: Literal["add_note"]
    body: Text
    matter_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    save_as: VarName | None = None


class RaiseAlertStep(StepBase):
    """Store an alert, listed per matter (the event's matter unless `matter_id` says; none for contacts)."""

    action: Literal["raise_alert"]
    severity: Literal["info", "warning", "critical"] = "warning"
    message: Text
    matter_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    save_as: VarName | None = None


class WaitStep(StepBase):
    """Pause the instance for `duration_seconds`, or until a time (a template yielding ISO 8601)."""

    action: Literal["wait"]
    duration_seconds: Annotated[int, Field(strict=True, ge=1, le=MAX_WAIT_SECONDS)] | None = None
    until: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None


class BranchStep(StepBase):
    """Run `then` when the condition is true, else `else`; then carry on after the branch."""

    action: Literal["branch"]
    condition: Any
    then: list[Any] = Field(default_factory=list)
    else_: list[Any] = Field(default_factory=list, alias="else")


STEP_MODELS: dict[str, type[StepBase]] = {
    "http": HttpStep,
    "update_entity": UpdateEntityStep,
    "create_activity": CreateActivityStep,
    "add_note": AddNoteStep,
    "raise_alert": RaiseAlertStep,
    "wait": WaitStep,
    "branch": BranchStep,
}
_ARTICLE = {a: ("an" if a[0] in "aeiouh" else "a") for a in STEP_MODELS}  # an http step


class DefinitionShell(StrictModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    active: bool | None = Field(
        default=None, exclude=True, description="Not versioned: whether new events start instances."
    )
    trigger: TriggerDef
    single_instance_per_entity: bool = Field(
        default=False,
        description="Skip a start while an instance for the same entity is running, waiting or completed.",
    )
    steps: list[Any] = Field(min_length=1)


# Typed documentation of the whole format (OpenAPI): the same models with the branches' steps typed.
class BranchStepDoc(BranchStep):
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


Step = Annotated[
    HttpStep
    | UpdateEntityStep
    | CreateActivityStep
    | AddNoteStep
    | RaiseAlertStep
    | WaitStep
    | BranchStepDoc,
    Field(discriminator="action"),
]


class WorkflowDefinition(DefinitionShell):
    """A workflow definition, as sent (JSON or YAML) and as stored (normalised)."""

    steps: list[Step] = Field(min_length=1)


BranchStepDoc.model_rebuild()
WorkflowDefinition.model_rebuild()


# --- event patterns -------------------------------------------------------------------------------------


def patterns_of(trigger: dict[str, Any]) -> list[str]:
    event = trigger.get("event")
    return [event] if isinstance(event, str) else list(event or [])


def matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return event_type in EVENT_TYPES or event_type.split(".", 1)[0] in PREFIXES
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def matches_any(patterns: list[str], event_type: str) -> bool:
    return any(matches(p, event_type) for p in patterns)


def _pattern_problem(pattern: str) -> str | None:
    if pattern == "*" or pattern in EVENT_TYPES:
        return None
    if pattern.endswith(".*") and pattern[:-2] in PREFIXES:
        return None
    if pattern.endswith(".*"):
        return (
            f"unknown event prefix '{pattern[:-2]}'; workflows can trigger on: {', '.join(sorted(PREFIXES))}"
        )
    prefix = pattern.split(".", 1)[0]
    if prefix in ("workflow", "workflow_instance", "linked_service"):
        return f"workflows cannot trigger on {prefix} events"
    near = sorted(t for t in EVENT_TYPES if t.split(".", 1)[0] == prefix)
    hint = (
        f"; {prefix} events are: {', '.join(near)}"
        if near
        else f"; see docs/events.md ({len(EVENT_TYPES)} types)"
    )
    return f"unknown event type '{pattern}'{hint}"


def entity_types_of(patterns: list[str]) -> set[str] | None:
    """The entity types the trigger's events are about; None when any entity is possible."""
    out: set[str] = set()
    for p in patterns:
        if p == "*":
            return None
        if p.endswith(".*"):
            out.add(PREFIXES.get(p[:-2], p[:-2]))
        else:
            out.add(EVENT_TYPES.get(p, p.split(".", 1)[0]))
    return out


# --- expressions: reading and describing --------------------------------------------------------------


def var_paths(expr: Any) -> list[str]:
    """The dotted paths an expression reads with ``var`` (in order, without repeats)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for n in node:
                walk(n)
        elif isinstance(node, dict) and len(node) == 1:
            (op, args), *_ = node.items()
            if op == "var":
                path = args[0] if isinstance(args, list) and args else args
                if isinstance(path, str) and path and path not in found:
                    found.append(path)
                return
            walk(args)

    walk(expr)
    return found


_INFIX = {"==", "!=", "<", "<=", ">", ">=", "in", "+", "-", "*", "/", "%"}


def describe(expr: Any) -> str:
    """A condition as a person reads it: ``entity.total.amount > 1000 and entity.kind == "expense"``."""

    def text(node: Any, top: bool = False) -> str:
        if isinstance(node, list):
            return "[" + ", ".join(text(n) for n in node) + "]"
        if not isinstance(node, dict) or len(node) != 1:
            return json.dumps(node, default=str)
        (op, raw), *_ = node.items()
        args = raw if isinstance(raw, list) else [raw]
        if op == "var":
            return str(args[0]) if args and args[0] else "data"
        if op == "changed":
            return f"changed({args[0]})"
        if op in ("and", "or"):
            inner = f" {op} ".join(text(a) for a in args)
            return inner if top else f"({inner})"
        if op == "!":
            return f"not {text(args[0])}"
        if op == "!!":
            return f"truthy({text(args[0])})"
        if op in _INFIX and len(args) >= 2:
            inner = f" {op} ".join(text(a) for a in args)
            return inner if top else f"({inner})"
        return f"{op}({', '.join(text(a) for a in args)})"

    return text(expr, top=True)


def placeholders(value: Any) -> list[str]:
    """The dotted paths a template reads."""
    out: list[str] = []
    if isinstance(value, str):
        out += [m.group(1) for m in _PLACEHOLDER.finditer(value)]
    elif isinstance(value, dict):
        for v in value.values():
            out += placeholders(v)
    elif isinstance(value, list):
        for v in value:
            out += placeholders(v)
    return out


# --- validation -----------------------------------------------------------------------------------------


class _Checker:
    def __init__(self, services: set[str] | None, prefix: str) -> None:
        self.services = services
        self.prefix = prefix
        self.errors: list[dict[str, str]] = []
        self.ids: dict[str, str] = {}  # step id -> where
        self.defined_vars: set[str] = set()
        self.var_uses: list[tuple[str, str]] = []  # (var name, where)
        self.count = 0
        self.entity_types: set[str] | None = None

    def at(self, *parts: object) -> str:
        return ".".join(str(p) for p in (self.prefix, *parts) if p != "")

    def error(self, where: str, message: str, code: str = "invalid") -> None:
        self.errors.append(field_error(where, message, code))

    def pydantic(self, exc: ValidationError, where: str, what: str) -> None:
        for err in exc.errors():
            loc = [str(p) for p in err["loc"] if p != "[key]"]
            path = ".".join([where, *loc]) if loc else where
            kind = err["type"]
            if kind == "missing":
                message = f"{what} needs '{loc[-1]}'" if loc else f"{what} is incomplete"
            elif kind == "extra_forbidden":
                message = f"unknown field '{loc[-1]}' in {what}"
            else:
                message = str(err["msg"]).removeprefix("Value error, ")
            self.error(path, message, kind)

    # roots and variables -----------------------------------------------------------------------------

    def reads(self, path: str, where: str, kind: str) -> None:
        if any(part.startswith("__") for part in path.split(".")):
            self.error(
                where, f"{kind} reads '{path}': paths name data fields, never '__' attributes", "invalid_path"
            )
            return
        root = path.split(".", 1)[0]
        if root not in ROOTS:
            self.error(
                where, f"{kind} reads '{path}': it must start with one of {', '.join(ROOTS)}", "unknown_root"
            )
            return
        if root == "vars":
            parts = path.split(".")
            if len(parts) < 2:
                self.error(where, "name the variable: vars.<name>", "invalid_path")
            else:
                self.var_uses.append((parts[1], where))

    def expression(self, expr: Any, where: str) -> None:
        problems = expressions.validate(expr, where)
        for p in problems:
            self.error(p.path or where, p.message, "invalid_expression")
        if not problems:
            for path in var_paths(expr):
                self.reads(path, where, "the condition")

    def template(self, value: Any, where: str) -> None:
        problems = expressions.validate_template(value, where)
        for p in problems:
            self.error(p.path or where, p.message, "invalid_template")
        if problems:
            return
        self._template_roots(value, where)

    def _template_roots(self, value: Any, where: str) -> None:
        if isinstance(value, str):
            for path in placeholders(value):
                self.reads(path, where, "the template")
        elif isinstance(value, dict):
            for k, v in value.items():
                self._template_roots(v, f"{where}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._template_roots(v, f"{where}.{i}")

    # the whole definition ---------------------------------------------------------------------------

    def definition(self, raw: Any) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.error(self.prefix, "a workflow definition is an object with name, trigger and steps", "type")
            return None
        try:
            shell = DefinitionShell.model_validate(raw)
        except ValidationError as exc:
            self.pydantic(exc, self.prefix, "the workflow")
            shell = None
        trigger = self.trigger(raw.get("trigger"))
        steps_raw = raw.get("steps")
        steps: list[dict[str, Any]] = []
        if isinstance(steps_raw, list):
            steps = self.steps(steps_raw, self.at("steps"), depth=0)
            if self.count > MAX_STEPS:
                self.error(
                    self.at("steps"),
                    f"a workflow has at most {MAX_STEPS} steps; this one has {self.count}",
                    "too_many",
                )
        for name, where in self.var_uses:
            if name not in self.defined_vars:
                self.error(
                    where,
                    f"no step sets a variable named '{name}' (variables come from an http step's capture "
                    "or a step's save_as)",
                    "unknown_variable",
                )
        if self.errors or shell is None or trigger is None:
            return None
        return {
            "name": shell.name,
            "description": shell.description,
            "trigger": trigger,
            "single_instance_per_entity": shell.single_instance_per_entity,
            "steps": steps,
        }

    def trigger(self, raw: Any) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            return None  # DefinitionShell reported it
        try:
            trig = TriggerDef.model_validate(raw)
        except ValidationError:
            return None  # reported through DefinitionShell
        listed = isinstance(trig.event, list)
        patterns = patterns_of({"event": trig.event})
        if not patterns:
            self.error(self.at("trigger", "event"), "name at least one event type", "missing")
        valid = []
        for i, pattern in enumerate(patterns):
            problem = _pattern_problem(pattern)
            if problem:
                self.error(self.at("trigger", "event", i if listed else ""), problem, "unknown_event_type")
            else:
                valid.append(pattern)
        self.entity_types = entity_types_of(valid)
        if trig.condition is not None:
            self.expression(trig.condition, self.at("trigger", "condition"))
            for path, where in ((p, self.at("trigger", "condition")) for p in var_paths(trig.condition)):
                if path.startswith("vars."):
                    self.error(
                        where, "a trigger condition cannot read vars: no step has run yet", "unknown_variable"
                    )
        self.var_uses = [(n, w) for n, w in self.var_uses if not w.startswith(self.at("trigger"))]
        return {"event": patterns, "condition": trig.condition}

    def steps(self, items: list[Any], where: str, depth: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            step = self.step(item, f"{where}.{i}", depth)
            if step is not None:
                out.append(step)
        return out

    def step(self, raw: Any, where: str, depth: int) -> dict[str, Any] | None:
        self.count += 1
        if not isinstance(raw, dict):
            self.error(where, "a step is an object with an 'action'", "type")
            return None
        action = raw.get("action")
        if action not in STEP_MODELS:
            message = (
                f"unknown action {action!r}; use one of: {', '.join(ACTIONS)}"
                if action is not None
                else f"a step needs 'action', one of: {', '.join(ACTIONS)}"
            )
            self.error(f"{where}.action", message, "unknown_action" if action is not None else "missing")
            return None
        what = f"{_ARTICLE[action]} {action} step"
        try:
            model = STEP_MODELS[action].model_validate(raw)
        except ValidationError as exc:
            self.pydantic(exc, where, what)
            model = None
        step_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        if step_id is not None:
            if step_id in self.ids:
                self.error(
                    f"{where}.id", f"duplicate step id '{step_id}' (also at {self.ids[step_id]})", "duplicate"
                )
            else:
                self.ids[step_id] = f"{where}.id"
        if model is None:
            # Still look inside a branch so that its children's problems are reported too.
            if action == "branch":
                for key in ("then", "else"):
                    if isinstance(raw.get(key), list):
                        self.steps(raw[key], f"{where}.{key}", depth + 1)
            return None
        check = getattr(self, f"_{action}")
        normalised: dict[str, Any] | None = check(model, where, depth)
        if normalised is None:
            return None
        if model.id is None:  # a default id: the step's path, e.g. steps_1_then_0
            default = where.removeprefix(f"{self.prefix}.").replace(".", "_")
            if default in self.ids:
                self.error(
                    self.ids[default],
                    f"duplicate step id '{default}' (the default id of the step at {where})",
                    "duplicate",
                )
            self.ids.setdefault(default, where)
            normalised["id"] = default
        else:
            normalised["id"] = model.id
        return normalised

    def _dump(self, model: BaseModel) -> dict[str, Any]:
        return model.model_dump(mode="json", by_alias=True, exclude_none=True)

    # one method per action ---------------------------------------------------------------------------

    def _http(self, step: HttpStep, where: str, depth: int) -> dict[str, Any]:
        if self.services is not None and step.service not in self.services:
            known = (
                f"; linked services: {', '.join(sorted(self.services))}"
                if self.services
                else ("; there are no linked services yet (POST /api/v1/linked-services)")
            )
            self.error(
                f"{where}.service", f"no linked service named '{step.service}'{known}", "unknown_service"
            )
        if "://" in step.path or step.path.startswith("//"):
            self.error(
                f"{where}.path",
                "the path is relative to the linked service's base URL; it cannot name a host",
                "absolute_path",
            )
        self.template(step.path, f"{where}.path")
        for name in ("query", "headers", "body"):
            value = getattr(step, name)
            if value is not None:
                self.template(value, f"{where}.{name}")
        for var, path in step.capture.items():
            if not _DOTTED.match(path) or path.split(".", 1)[0] != "response":
                self.error(
                    f"{where}.capture.{var}",
                    f"'{path}' is not a path into the response such as response.body.id",
                    "invalid_path",
                )
            self.defined_vars.add(var)
        return self._dump(step)

    def _update_entity(self, step: UpdateEntityStep, where: str, depth: int) -> dict[str, Any] | None:
        if step.fields is not None and step.field is not None:
            self.error(where, "give either 'field' with 'value', or 'fields', not both", "ambiguous")
            return None
        if step.fields is None and step.field is None:
            self.error(where, "an update_entity step needs 'field' with 'value', or 'fields'", "missing")
            return None
        fields = step.fields if step.fields is not None else {str(step.field): step.value}
        fields_where = f"{where}.fields" if step.fields is not None else f"{where}.value"
        if not fields:
            self.error(fields_where, "name at least one field to change", "missing")
        if step.entity_id is not None and step.entity_type is None:
            self.error(f"{where}.entity_type", "with entity_id, say which entity_type it is", "missing")
        if step.entity_id is not None:
            self.template(step.entity_id, f"{where}.entity_id")
        types = {step.entity_type} if step.entity_type else self.entity_types
        if types is not None:
            for t in sorted(types):
                allowed = UPDATABLE.get(t)
                if allowed is None:
                    self.error(
                        f"{where}.entity_type",
                        f"the trigger's {t} cannot be updated by a workflow; updatable: "
                        f"{', '.join(sorted(UPDATABLE))} (set entity_type and entity_id)",
                        "not_updatable",
                    )
                    continue
                for name in fields:
                    if name not in allowed:
                        at = f"{where}.fields.{name}" if step.fields is not None else f"{where}.field"
                        self.error(
                            at,
                            f"{t} has no updatable field '{name}'; use one of: {', '.join(sorted(allowed))}",
                            "unknown_field",
                        )
        self.template(fields, fields_where if step.fields is None else f"{where}.fields")
        out = self._dump(step)
        out.pop("field", None)
        out.pop("value", None)
        out["fields"] = fields
        return out

    def _create_activity(self, step: CreateActivityStep, where: str, depth: int) -> dict[str, Any]:
        kind = step.activity.get("kind")
        if kind not in ("time", "expense") and not (isinstance(kind, str) and "{{" in kind):
            self.error(f"{where}.activity.kind", "kind must be 'time' or 'expense'", "literal_error")
        self.template(step.activity, f"{where}.activity")
        if step.save_as:
            self.defined_vars.add(step.save_as)
        return self._dump(step)

    def _matter_of(self, step: AddNoteStep | RaiseAlertStep, where: str, required: bool) -> None:
        if step.matter_id is not None:
            self.template(step.matter_id, f"{where}.matter_id")
            return
        if not required or self.entity_types is None:
            return
        lacking = sorted(self.entity_types - HAS_MATTER)
        if lacking:
            self.error(
                f"{where}.matter_id",
                f"the trigger's {', '.join(lacking)} events have no matter: say which with matter_id",
                "missing",
            )

    def _add_note(self, step: AddNoteStep, where: str, depth: int) -> dict[str, Any]:
        self.template(step.body, f"{where}.body")
        self._matter_of(step, where, required=True)
        if step.save_as:
            self.defined_vars.add(step.save_as)
        return self._dump(step)

    def _raise_alert(self, step: RaiseAlertStep, where: str, depth: int) -> dict[str, Any]:
        self.template(step.message, f"{where}.message")
        self._matter_of(step, where, required=False)
        if step.save_as:
            self.defined_vars.add(step.save_as)
        return self._dump(step)

    def _wait(self, step: WaitStep, where: str, depth: int) -> dict[str, Any] | None:
        if step.duration_seconds is None and step.until is None:
            self.error(where, "a wait step needs duration_seconds or until", "missing")
            return None
        if step.duration_seconds is not None and step.until is not None:
            self.error(where, "a wait step takes duration_seconds or until, not both", "ambiguous")
            return None
        if step.until is not None:
            if _PLACEHOLDER.search(step.until):
                self.template(step.until, f"{where}.until")
            else:
                try:
                    datetime.fromisoformat(step.until)
                except ValueError:
                    self.error(
                        f"{where}.until",
                        f"'{step.until}' is not an ISO 8601 time nor a template",
                        "invalid_time",
                    )
        return self._dump(step)

    def _branch(self, step: BranchStep, where: str, depth: int) -> dict[str, Any] | None:
        self.expression(step.condition, f"{where}.condition")
        if depth + 1 > MAX_BRANCH_DEPTH:
            self.error(where, f"branches nest at most {MAX_BRANCH_DEPTH} deep", "too_deep")
            return None
        if not step.then and not step.else_:
            self.error(where, "a branch needs steps in 'then' or 'else'", "missing")
        out = self._dump(step)
        out["then"] = self.steps(step.then, f"{where}.then", depth + 1)
        out["else"] = self.steps(step.else_, f"{where}.else", depth + 1)
        return out


def check(
    raw: Any, *, services: set[str] | None, prefix: str = "body"
) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """Validate a definition. Returns (normalised definition, []) or (None, field errors).

    ``services`` are the linked services' names (None: do not check them)."""
    checker = _Checker(services, prefix)
    normalised = checker.definition(raw)
    return (normalised if not checker.errors else None), checker.errors


def walk_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step of a normalised definition, branches included, in document order."""
    out: list[dict[str, Any]] = []
    for step in steps:
        out.append(step)
        if step.get("action") == "branch":
            out += walk_steps(step.get("then", []))
            out += walk_steps(step.get("else", []))
    return out


def services_used(definition: dict[str, Any]) -> set[str]:
    return {str(s["service"]) for s in walk_steps(definition.get("steps", [])) if s.get("action") == "http"}

"""The workflow engine: deciding which workflows an event starts, and running instances step by step.

**Starting.** The ``workflows`` event subscriber (:func:`deliver`) gets each event it wants at least once,
in order per entity. For every active workflow it records a :class:`WorkflowEvaluation` (matched or not,
and why) and, on a match, creates an instance and enqueues a ``workflows.run`` job, all in one
transaction. An event already evaluated for a workflow is skipped, so a redelivered event never starts a
second instance.

**Running.** ``workflows.run`` (one running job per instance: its ``concurrency_key``) advances the
instance one step per transaction. Record-changing steps (notes, alerts, updates, new activities) commit
together with the instance's new position and their step log. An HTTP step is sent with **no
transaction open** (the service may call this API back while it answers, and on SQLite a held write lock
would deadlock it): the request is prepared and committed, sent, then the outcome is recorded in a new
transaction. Each HTTP step runs in a job of its own whose ``max_attempts`` is the step's, so network
errors, 5xx and 429 are retried by the job queue (``RetryLater`` with exponential backoff); after the
last attempt the instance fails with the error. A ``wait`` step parks the instance (``waiting``, with
``wake_at``) and enqueues the next run at that time.

States: ``running`` -> ``waiting`` -> ``running`` -> ``completed`` | ``failed``; ``cancelled`` by the
API. A failed instance keeps its position, so ``retry`` resumes at the step that failed.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from casebridge.db.types import utcnow
from casebridge.events import record_event
from casebridge.events.delivery import Delivery
from casebridge.events.outbox import set_actor
from casebridge.events.schemas import EventOut
from casebridge.jobs import queue
from casebridge.jobs.errors import RetryLater
from casebridge.jobs.worker import JobContext
from casebridge.kit.crypto import SecretBox
from casebridge.kit.expressions import ExpressionError, lookup, truthy
from casebridge.linked_services.client import LinkedServiceClient, LinkedServiceError, ServiceResponse
from casebridge.models import (
    Event,
    Workflow,
    WorkflowEvaluation,
    WorkflowInstance,
    WorkflowStepLog,
    WorkflowVersion,
)
from casebridge.workflows import actions, repository
from casebridge.workflows.actions import PreparedCall, StepFailed
from casebridge.workflows.definition import describe, matches_any, patterns_of, var_paths

log = logging.getLogger("casebridge.workflows")

RUN = "workflows.run"
INSTANCE = "workflow_instance"
RUN_MAX_ATTEMPTS = 25
MAX_STEPS_PER_JOB = 500
MAX_LOGGED_TEXT = 8000


# --- positions ------------------------------------------------------------------------------------------
# A position is a path into the steps: [2] is steps[2]; [2, "then", 0] is steps[2].then[0].


def _list_at(steps: list[dict[str, Any]], prefix: list[Any]) -> list[dict[str, Any]]:
    current = steps
    for i in range(0, len(prefix), 2):
        current = current[int(prefix[i])][str(prefix[i + 1])]
    return current


def step_at(steps: list[dict[str, Any]], position: list[Any]) -> dict[str, Any] | None:
    items = _list_at(steps, position[:-1])
    index = int(position[-1])
    return items[index] if index < len(items) else None


def advance(steps: list[dict[str, Any]], position: list[Any]) -> list[Any]:
    """The position after the step at ``position`` (leaving branches that end)."""
    pos = [*position[:-1], int(position[-1]) + 1]
    while len(pos) > 1 and int(pos[-1]) >= len(_list_at(steps, pos[:-1])):
        pos = [*pos[:-3], int(pos[-3]) + 1]
    return pos


def enter(steps: list[dict[str, Any]], position: list[Any], branch: str) -> list[Any]:
    step = step_at(steps, position)
    if step and step.get(branch):
        return [*position, branch, 0]
    return advance(steps, position)


def done(steps: list[dict[str, Any]], position: list[Any]) -> bool:
    return len(position) == 1 and int(position[0]) >= len(steps)


def position_key(position: list[Any]) -> str:
    return ".".join(str(p) for p in position)


# --- jobs and events -------------------------------------------------------------------------------------


def enqueue_run(
    session: Session,
    instance_id: uuid.UUID,
    *,
    at: str | None = None,
    run_at: datetime | None = None,
    max_attempts: int = RUN_MAX_ATTEMPTS,
) -> None:
    key = f"{RUN}:{instance_id}"
    queue.enqueue(
        session,
        RUN,
        {"instance_id": str(instance_id), "at": at},
        priority=queue.INTERACTIVE,
        run_at=run_at,
        unique_key=f"{key}:{at or ''}:{run_at.isoformat() if run_at else ''}",
        concurrency_key=key,
        max_attempts=max_attempts,
    )


def instance_event(
    session: Session, inst: WorkflowInstance, type_: str, old_state: str | None, **extra: Any
) -> None:
    changes: dict[str, Any] = {"state": {"old": old_state, "new": inst.state}}
    for name, value in extra.items():
        changes[name] = {"old": None, "new": value}
    record_event(session, f"{INSTANCE}.{type_}", INSTANCE, inst.id, changes)


def _truncate(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_LOGGED_TEXT:
        return value[:MAX_LOGGED_TEXT] + "…"
    if isinstance(value, dict):
        return {k: _truncate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_truncate(v) for v in value]
    return value


def add_log(
    session: Session,
    inst: WorkflowInstance,
    step: dict[str, Any],
    status: str,
    *,
    step_input: Any = None,
    output: Any = None,
    error: str | None = None,
    started_at: datetime | None = None,
) -> None:
    session.add(
        WorkflowStepLog(
            instance_id=inst.id,
            step_id=str(step.get("id", "?")),
            action=str(step.get("action", "?")),
            status=status,
            input=_truncate(step_input),
            output=_truncate(output),
            error=error,
            started_at=started_at or utcnow(),
            finished_at=utcnow(),
        )
    )


def fail_instance(session: Session, inst: WorkflowInstance, error: str) -> None:
    old = inst.state
    inst.state = "failed"
    inst.error = error[:4000]
    inst.wake_at = None
    instance_event(session, inst, "failed", old, error=inst.error)


# --- starting instances ----------------------------------------------------------------------------------


def template_data(
    event: dict[str, Any],
    entity: dict[str, Any] | None,
    workflow: Workflow,
    version: int,
    inst: WorkflowInstance | None = None,
) -> dict[str, Any]:
    return {
        "event": event,
        "entity": entity,
        "vars": dict(inst.variables or {}) if inst is not None else {},
        "workflow": {"id": str(workflow.id), "name": workflow.name, "version": version},
        "instance": {"id": str(inst.id)} if inst is not None else {},
    }


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)


def decide(
    definition: dict[str, Any], workflow: Workflow, event: EventOut, data: dict[str, Any]
) -> tuple[bool, str]:
    """Whether the trigger matches the event (before the single-instance rule), and why."""
    trigger = definition.get("trigger") or {}
    patterns = patterns_of(trigger)
    if not matches_any(patterns, event.type):
        return False, f"event type {event.type} does not match trigger {', '.join(patterns)}"
    me = actions.principal_for(workflow.name)
    if event.actor.id == str(me.token_id) and event.actor.name == me.name:
        return (
            False,
            "skipped: the event was raised by this workflow itself (a workflow never triggers itself)",
        )
    condition = trigger.get("condition")
    if condition is None:
        return True, f"event type {event.type} matches trigger {', '.join(patterns)}"
    try:
        result = truthy(condition, data)
    except ExpressionError as exc:
        return False, f"condition could not be evaluated: {exc.message}"
    if not result:
        values = "; ".join(f"{p} = {_shown(lookup(data, p, None))}" for p in var_paths(condition))
        return False, f"condition false: {describe(condition)}" + (f" (where {values})" if values else "")
    return True, f"condition true: {describe(condition)}"


def _start(
    session: Session,
    workflow: Workflow,
    version: WorkflowVersion,
    event: EventOut,
    entity: dict[str, Any] | None,
) -> WorkflowEvaluation:
    definition = version.definition
    data = template_data(event.model_dump(mode="json"), entity, workflow, version.version)
    matched, reason = decide(definition, workflow, event, data)
    instance_id = None
    if matched and definition.get("single_instance_per_entity"):
        blocking = repository.blocking_instance(session, workflow.id, event.entity_type, event.entity_id)
        if blocking is not None:
            matched = False
            reason = (
                f"skipped: single instance per entity, instance {blocking.id} already {blocking.state} "
                f"for {event.entity_type} {event.entity_id}"
            )
    if matched:
        inst = WorkflowInstance(
            workflow_id=workflow.id,
            workflow_version=version.version,
            event_id=event.id,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
            state="running",
            variables={},
            position=[0],
        )
        session.add(inst)
        session.flush()
        instance_id = inst.id
        reason = f"{reason}; started instance {inst.id}"
        enqueue_run(session, inst.id)
        instance_event(
            session,
            inst,
            "started",
            None,
            workflow_id=str(workflow.id),
            workflow_name=workflow.name,
            workflow_version=version.version,
            event_id=event.id,
            entity_type=event.entity_type,
            entity_id=event.entity_id,
        )
    row = WorkflowEvaluation(
        event_id=event.id,
        workflow_id=workflow.id,
        workflow_version=version.version,
        matched=matched,
        reason=reason[:4000],
        instance_id=instance_id,
        created_at=utcnow(),
    )
    session.add(row)
    return row


def evaluate_event(session: Session, event: EventOut) -> list[WorkflowEvaluation]:
    """Evaluate every active workflow against ``event`` once; already-evaluated pairs are skipped."""
    out: list[WorkflowEvaluation] = []
    entity: dict[str, Any] | None = None
    loaded = False
    set_actor(session, None, event.request_id)
    for workflow, version in repository.current_definitions(session, active_only=True):
        if workflow.created_at > event.occurred_at:
            continue  # the workflow did not exist when the event happened
        if repository.evaluation(session, event.id, workflow.id) is not None:
            continue  # a redelivery: this event was already decided for this workflow
        if repository.instance_for_event(session, workflow.id, event.id) is not None:
            continue
        if not loaded:
            entity, loaded = actions.load_entity(session, event.entity_type, event.entity_id), True
        out.append(_start(session, workflow, version, event, entity))
    session.flush()
    return out


def deliver(d: Delivery) -> None:
    with d.ctx.unit_of_work() as session:
        evaluate_event(session, d.event)


def wants(session: Session, _subscription: Any, event: Event) -> bool:
    """The dispatcher's cheap filter: only events some active workflow's trigger names. The patterns
    are read once per dispatch transaction."""
    key = "casebridge.workflow_patterns"
    patterns: list[str] | None = session.info.get(key)
    if patterns is None:
        patterns = repository.trigger_patterns(session)
        session.info[key] = patterns
    return matches_any(patterns, event.type)


# --- running instances ----------------------------------------------------------------------------------


@dataclass
class _Loaded:
    inst: WorkflowInstance
    workflow: Workflow
    steps: list[dict[str, Any]]
    data: dict[str, Any]
    request_id: str | None


def _load(session: Session, inst: WorkflowInstance) -> _Loaded | None:
    workflow = session.get(Workflow, inst.workflow_id)
    definition = repository.definition_of(session, inst)
    if workflow is None or definition is None:
        return None
    event_row = session.get(Event, inst.event_id) if inst.event_id is not None else None
    event = EventOut.of(event_row).model_dump(mode="json") if event_row is not None else {}
    entity = actions.load_entity(session, inst.entity_type, inst.entity_id)
    data = template_data(event, entity, workflow, inst.workflow_version, inst)
    return _Loaded(inst, workflow, list(definition.get("steps") or []), data, event.get("request_id"))


def _box(ctx: JobContext) -> SecretBox | None:
    return SecretBox(ctx.settings.resolved_secret_key) if ctx.settings is not None else None


@dataclass
class _Http:
    instance_id: uuid.UUID
    position: list[Any]
    step: dict[str, Any]
    call: PreparedCall
    workflow_name: str
    request_id: str | None


def _complete(session: Session, inst: WorkflowInstance) -> None:
    old = inst.state
    inst.state = "completed"
    inst.wake_at = None
    instance_event(session, inst, "completed", old)


def _record_failure(ctx: JobContext, instance_id: uuid.UUID, step: dict[str, Any], exc: StepFailed) -> None:
    """In a transaction of its own: whatever the failed step changed was rolled back with its own."""
    with ctx.unit_of_work() as session:
        inst = repository.instance(session, instance_id, for_update=True)
        if inst is None or inst.state not in repository.LIVE_STATES:
            return  # cancelled meanwhile (a waiting one resuming rolled back to waiting with the step)
        workflow = session.get(Workflow, inst.workflow_id)
        set_actor(session, actions.principal_for(workflow.name if workflow else "?"), None)
        add_log(session, inst, step, "failed", step_input=exc.step_input, error=exc.message)
        fail_instance(session, inst, f"step {step.get('id')} ({step.get('action')}) failed: {exc.message}")


def _tick(ctx: JobContext, instance_id: uuid.UUID, box: SecretBox | None) -> bool | _Http:
    """One step in one transaction. True: carry on; False: stop this job; _Http: send this call now."""
    step: dict[str, Any] = {}
    try:
        with ctx.unit_of_work() as session:
            return _step(ctx, session, instance_id, box, step)
    except StepFailed as exc:
        _record_failure(ctx, instance_id, step, exc)
        return False


def _step(
    ctx: JobContext, session: Session, instance_id: uuid.UUID, box: SecretBox | None, current: dict[str, Any]
) -> bool | _Http:
    inst = repository.instance(session, instance_id, for_update=True)
    if inst is None or inst.state not in repository.LIVE_STATES:
        return False
    if inst.state == "waiting":
        if inst.wake_at is not None and inst.wake_at > utcnow():
            return False  # woken early (a duplicate job); the scheduled run will come
        inst.state, inst.wake_at = "running", None
    loaded = _load(session, inst)
    if loaded is None:
        fail_instance(session, inst, "the workflow or its version no longer exists")
        return False
    set_actor(session, actions.principal_for(loaded.workflow.name), loaded.request_id)
    position = list(inst.position or [0])
    try:
        if done(loaded.steps, position):
            _complete(session, inst)
            return False
        step = step_at(loaded.steps, position)
    except (IndexError, KeyError, TypeError, ValueError):
        step = None
    if step is None:
        fail_instance(session, inst, f"the position {position_key(position)} is not in the definition")
        return False
    current.update(step)  # for the failure record, should the step raise StepFailed
    action = str(step.get("action"))
    if action == "http":
        if ctx.args.get("at") != position_key(position):
            # Each HTTP step runs in a job of its own, so that job's attempts are the step's attempts.
            attempts = int(step.get("max_attempts", 5))
            enqueue_run(session, inst.id, at=position_key(position), max_attempts=attempts)
            return False
        key = f"wf-{inst.id}-{step.get('id')}"
        call = actions.prepare_http(session, box, step, loaded.data, key)
        return _Http(inst.id, position, step, call, loaded.workflow.name, loaded.request_id)
    if action == "branch":
        shown = {"condition": describe(step.get("condition"))}
        try:
            result = truthy(step.get("condition"), loaded.data)
        except ExpressionError as exc:
            raise StepFailed(f"condition: {exc.message}", shown) from None
        branch = "then" if result else "else"
        add_log(session, inst, step, "ok", step_input=shown, output={"result": result, "branch": branch})
        inst.position = enter(loaded.steps, position, branch)
        return True
    if action == "wait":
        now = utcnow()
        wake = actions.wake_time(step, loaded.data, now)
        inst.position = advance(loaded.steps, position)
        if wake <= now:
            add_log(
                session, inst, step, "ok", step_input={"until": wake.isoformat()}, output={"waited": False}
            )
            return True
        add_log(
            session,
            inst,
            step,
            "waiting",
            step_input={"until": wake.isoformat()},
            output={"wake_at": wake.isoformat()},
        )
        inst.state, inst.wake_at = "waiting", wake
        enqueue_run(session, inst.id, run_at=wake)
        return False
    handler = actions.RECORD_ACTIONS.get(action)
    if handler is None:
        raise StepFailed(f"unknown action {action!r}")
    started = utcnow()
    principal = actions.principal_for(loaded.workflow.name)
    context = actions.Context(session, principal, inst.entity_type, inst.entity_id, loaded.data)
    step_input, output = handler(context, step)
    save_as = step.get("save_as")
    if save_as and isinstance(output, dict) and "id" in output:
        inst.variables = {**(inst.variables or {}), str(save_as): output["id"]}
    add_log(session, inst, step, "ok", step_input=step_input, output=output, started_at=started)
    inst.position = advance(loaded.steps, position)
    return True


def _describe_failure(
    call: PreparedCall, response: ServiceResponse | None, error: LinkedServiceError | None
) -> str:
    if error is not None:
        return error.message
    assert response is not None
    body = response.body if isinstance(response.body, str) else json.dumps(response.body, default=str)
    excerpt = f": {body[:500]}" if body else ""
    return f"{call.method} {call.path} answered {response.status}{excerpt}"


def _succeeded(call: PreparedCall, response: ServiceResponse) -> bool:
    if call.expect_status:
        return response.status in call.expect_status
    return 200 <= response.status < 300


def _retry_after(response: ServiceResponse | None) -> float | None:
    if response is None:
        return None
    raw = response.headers.get("retry-after")
    try:
        return min(3600.0, max(0.0, float(raw))) if raw is not None else None
    except ValueError:
        return None


def _send(ctx: JobContext, http: _Http) -> bool:
    """Send a prepared call (no transaction is open) and record what happened."""
    call = http.call
    client = LinkedServiceClient(call.config)
    started = utcnow()
    response: ServiceResponse | None = None
    error: LinkedServiceError | None = None
    try:
        response = client.request(
            call.method, call.path, json=call.body, params=call.query, headers=call.headers
        )
    except LinkedServiceError as exc:
        error = exc
    step_input = client.redact(
        {
            "service": call.config.name,
            "method": call.method,
            "url": client.url_for(call.path),
            "query": call.query,
            "headers": client.last_request_headers or call.headers,
            "body": call.body,
        }
    )
    output = client.redact({"response": response.as_data()}) if response is not None else None
    retry_in = 0.0
    message = ""
    with ctx.unit_of_work() as session:
        inst = repository.instance(session, http.instance_id, for_update=True)
        if inst is None:
            return False
        set_actor(session, actions.principal_for(http.workflow_name), http.request_id)
        if inst.state != "running" or list(inst.position or []) != http.position:
            add_log(
                session,
                inst,
                http.step,
                "skipped",
                step_input=step_input,
                output=output,
                error=f"the instance was {inst.state} while the call ran; its result is not used",
                started_at=started,
            )
            return False
        if response is not None and _succeeded(call, response):
            captured: dict[str, Any] = {}
            missing: list[str] = []
            for var, path in call.capture.items():
                try:
                    captured[var] = client.redact(lookup({"response": response.as_data()}, path))
                except ExpressionError:
                    missing.append(f"{var} <- {path}")
            if missing:
                message = f"the response has nothing to capture at {', '.join(missing)}"
                add_log(
                    session,
                    inst,
                    http.step,
                    "failed",
                    step_input=step_input,
                    output=output,
                    error=message,
                    started_at=started,
                )
                fail_instance(session, inst, f"step {http.step.get('id')} (http) failed: {message}")
                return False
            inst.variables = {**(inst.variables or {}), **captured}
            add_log(
                session,
                inst,
                http.step,
                "ok",
                step_input=step_input,
                output={**(output or {}), "captured": captured},
                started_at=started,
            )
            definition = repository.definition_of(session, inst) or {}
            inst.position = advance(list(definition.get("steps") or []), http.position)
            return True
        message = client.redact(_describe_failure(call, response, error))
        retryable = (
            error.retryable
            if error is not None
            else (response is not None and (response.status >= 500 or response.status == 429))
        )
        attempt, limit = ctx.job.attempt, call.max_attempts
        if retryable and attempt < limit:
            retry_in = _retry_after(response) or queue.backoff_seconds(
                attempt, base=call.retry_delay, cap=3600.0
            )
            add_log(
                session,
                inst,
                http.step,
                "failed",
                step_input=step_input,
                output=output,
                error=f"attempt {attempt} of {limit}: {message}; retrying in {retry_in:.1f}s",
                started_at=started,
            )
        else:
            tries = f" after {attempt} attempts" if retryable else ""
            add_log(
                session,
                inst,
                http.step,
                "failed",
                step_input=step_input,
                output=output,
                error=message,
                started_at=started,
            )
            fail_instance(session, inst, f"step {http.step.get('id')} (http) failed{tries}: {message}")
            return False
    raise RetryLater(retry_in, f"workflow instance {http.instance_id}: {message}")


def on_run_dead(session: Session, args: dict[str, Any], error: str) -> None:
    """A ``workflows.run`` job went dead without failing its instance itself (its worker was killed
    during the last attempt): fail the instance, so it is not left ``running`` forever."""
    inst = repository.instance(session, uuid.UUID(str(args["instance_id"])), for_update=True)
    if inst is not None and inst.state in repository.LIVE_STATES:
        fail_instance(session, inst, f"its run job died after its last attempt: {error}")


def run(ctx: JobContext) -> None:
    """The ``workflows.run`` job: advance one instance as far as it goes now."""
    instance_id = uuid.UUID(str(ctx.args["instance_id"]))
    box = _box(ctx)
    try:
        for _ in range(MAX_STEPS_PER_JOB):
            outcome = _tick(ctx, instance_id, box)
            if isinstance(outcome, _Http):
                if not _send(ctx, outcome):
                    return
                # The next step may be another HTTP call: it gets a job of its own (fresh attempts).
                continue
            if not outcome:
                return
        with ctx.unit_of_work() as session:  # a long workflow: carry on in a fresh job
            enqueue_run(session, instance_id)
    except RetryLater:
        raise
    except Exception as exc:
        if ctx.job.attempt >= ctx.job.max_attempts:
            log.exception("workflow instance %s: giving up after %d attempts", instance_id, ctx.job.attempt)
            with ctx.unit_of_work() as session:
                inst = repository.instance(session, instance_id, for_update=True)
                if inst is not None and inst.state in repository.LIVE_STATES:
                    fail_instance(session, inst, f"internal error: {type(exc).__name__}: {exc}")
        raise

"""/api/v1/workflows: definitions (JSON or YAML, versioned), instances (cancel, retry) and the inspector.

Admins change workflows; admins and integrations read them. Bad definitions are refused with a 422 whose
``errors[]`` name each problem's exact path (``body.steps.1.then.0.service``).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from casebridge.kit.context import Role
from casebridge.kit.deps import PrincipalDep, Require, SessionDep
from casebridge.kit.etag import check_if_match, etag_for
from casebridge.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, order_options, paginate
from casebridge.kit.problems import not_found
from casebridge.kit.responses import conditional, created
from casebridge.kit.uow import ApiRoute
from casebridge.models import Workflow, WorkflowInstance, WorkflowVersion
from casebridge.workflows import repository, service
from casebridge.workflows.definition import WorkflowDefinition
from casebridge.workflows.schemas import (
    InspectionOut,
    InstanceDetail,
    InstanceOut,
    ValidationOut,
    WorkflowOut,
    WorkflowVersionOut,
)

router = APIRouter(prefix="/workflows", tags=["workflows"], route_class=ApiRoute)
READ = [Depends(Require(Role.ADMIN, Role.INTEGRATION))]
ADMIN = [Depends(Require(Role.ADMIN))]

_SCHEMA = {"$ref": "#/components/schemas/WorkflowDefinition"}
DEFINITION_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A workflow definition, as JSON or as YAML (`Content-Type: application/yaml`).",
        "content": {"application/json": {"schema": _SCHEMA}, "application/yaml": {"schema": _SCHEMA}},
    }
}
PATCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Top-level keys of the definition to replace (and/or `active`), as JSON or YAML.",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "object"}},
        },
    }
}
_422: dict[int | str, dict[str, Any]] = {
    422: {"description": "The definition is invalid: `errors[]` names each problem's path."}
}


async def _definition(request: Request) -> Any:
    return service.parse_body(await request.body(), request.headers.get("content-type"))


DefinitionBody = Annotated[Any, Depends(_definition)]


def _out(
    response: Response, session: SessionDep, workflow: Workflow, version: WorkflowVersion | None = None
) -> WorkflowOut:
    out = WorkflowOut.of(workflow, version or service.current_version(session, workflow))
    response.headers["ETag"] = out.etag
    return out


@router.get("", dependencies=READ)
def list_workflows(
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: Annotated[str, Query(description=order_options(*repository.ORDER_COLUMNS))] = "name",
) -> Page[WorkflowOut]:
    page = paginate(
        session,
        repository.list_query(),
        columns=repository.ORDER_COLUMNS,
        id_column=Workflow.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(
        data=[WorkflowOut.of(w, service.current_version(session, w)) for w in page.rows],
        next_cursor=page.next_cursor,
    )


@router.post("", dependencies=ADMIN, status_code=201, openapi_extra=DEFINITION_BODY, responses=_422)
def create_workflow(
    request: Request, response: Response, session: SessionDep, principal: PrincipalDep, body: DefinitionBody
) -> WorkflowOut:
    """Create a workflow (version 1) from a definition in JSON or YAML; see docs/workflows.md."""
    workflow, version = service.create(session, principal, body)
    out = WorkflowOut.of(workflow, version)
    created(request, response, out.etag, f"/api/v1/workflows/{out.id}")
    return out


@router.post("/validate", dependencies=ADMIN, openapi_extra=DEFINITION_BODY, responses=_422)
def validate_workflow(session: SessionDep, body: DefinitionBody) -> ValidationOut:
    """Check a definition without saving it: 200 with the normalised definition, or 422."""
    definition = service.validate_definition(session, body)
    session.rollback()
    return ValidationOut(valid=True, definition=WorkflowDefinition.model_validate(definition))


@router.get("/instances", dependencies=READ)
def list_workflow_instances(
    session: SessionDep,
    workflow_id: uuid.UUID | None = None,
    state: Annotated[str | None, Query(pattern="^(running|waiting|completed|failed|cancelled)$")] = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    event_id: int | None = None,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: Annotated[str, Query(description=order_options(*repository.INSTANCE_ORDER))] = "-created_at",
) -> Page[InstanceOut]:
    """Instances, newest first by default."""
    page = paginate(
        session,
        repository.instances_query(
            workflow_id=workflow_id,
            state=state,
            entity_type=entity_type,
            entity_id=entity_id,
            event_id=event_id,
        ),
        columns=repository.INSTANCE_ORDER,
        id_column=WorkflowInstance.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[InstanceOut.of(i) for i in page.rows], next_cursor=page.next_cursor)


@router.get("/instances/{instance_id}", dependencies=READ)
def get_workflow_instance(session: SessionDep, instance_id: uuid.UUID) -> InstanceDetail:
    """An instance with its step log: each step's input and output, secrets redacted."""
    inst = service.instance_or_404(session, instance_id)
    return InstanceDetail.with_steps(inst, repository.step_logs(session, inst.id))


@router.post("/instances/{instance_id}/cancel", dependencies=ADMIN)
def cancel_workflow_instance(session: SessionDep, instance_id: uuid.UUID) -> InstanceOut:
    """Stop a running or waiting instance (409 otherwise). A call already in flight finishes, but its
    result is not used."""
    return InstanceOut.of(
        service.cancel(session, service.instance_or_404(session, instance_id, for_update=True))
    )


@router.post("/instances/{instance_id}/retry", dependencies=ADMIN)
def retry_workflow_instance(session: SessionDep, instance_id: uuid.UUID) -> InstanceOut:
    """Resume a failed instance at the step that failed, with fresh attempts (409 unless failed)."""
    return InstanceOut.of(
        service.retry(session, service.instance_or_404(session, instance_id, for_update=True))
    )


@router.get("/inspector/{event_id}", dependencies=READ)
def inspect_event(session: SessionDep, event_id: int) -> InspectionOut:
    """For one event: every workflow, whether it matched and why not (trigger type, condition with the
    values it saw, single instance per entity, ...), and for matches what the instance did."""
    return service.inspect(session, event_id)


@router.get("/{workflow_id}", dependencies=READ, response_model=WorkflowOut)
def get_workflow(
    request: Request, response: Response, session: SessionDep, workflow_id: uuid.UUID
) -> WorkflowOut | Response:
    workflow = service.get_or_404(session, workflow_id)
    return conditional(request, response, etag_for(workflow.id, workflow.version)) or WorkflowOut.of(
        workflow, service.current_version(session, workflow)
    )


@router.put("/{workflow_id}", dependencies=ADMIN, openapi_extra=DEFINITION_BODY, responses=_422)
def replace_workflow(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    workflow_id: uuid.UUID,
    body: DefinitionBody,
) -> WorkflowOut:
    """Replace the definition: a new version when it changed. Running instances keep their version."""
    workflow = service.get_or_404(session, workflow_id)
    check_if_match(request, etag_for(workflow.id, workflow.version))
    return _out(response, session, *service.replace(session, principal, workflow, body))


@router.patch("/{workflow_id}", dependencies=ADMIN, openapi_extra=PATCH_BODY, responses=_422)
def update_workflow(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    workflow_id: uuid.UUID,
    body: DefinitionBody,
) -> WorkflowOut:
    """Replace top-level keys of the definition (`trigger`, `steps`, ...): a new version when it changed.
    `{"active": false}` alone stops new instances without a new version."""
    workflow = service.get_or_404(session, workflow_id)
    check_if_match(request, etag_for(workflow.id, workflow.version))
    return _out(response, session, *service.patch(session, principal, workflow, body))


@router.delete("/{workflow_id}", dependencies=ADMIN, status_code=204)
def delete_workflow(request: Request, session: SessionDep, workflow_id: uuid.UUID) -> Response:
    """Delete the workflow with its versions and instances (its events remain)."""
    workflow = service.get_or_404(session, workflow_id)
    check_if_match(request, etag_for(workflow.id, workflow.version))
    service.delete(session, workflow)
    return Response(status_code=204)


@router.get("/{workflow_id}/versions", dependencies=READ)
def list_workflow_versions(
    session: SessionDep, workflow_id: uuid.UUID, limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None
) -> Page[WorkflowVersionOut]:
    service.get_or_404(session, workflow_id)
    page = paginate(
        session,
        repository.versions_query(workflow_id),
        columns=repository.VERSION_ORDER,
        id_column=WorkflowVersion.id,
        order="version",
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[WorkflowVersionOut.of(v) for v in page.rows], next_cursor=page.next_cursor)


@router.get("/{workflow_id}/versions/{version}", dependencies=READ)
def get_workflow_version(session: SessionDep, workflow_id: uuid.UUID, version: int) -> WorkflowVersionOut:
    service.get_or_404(session, workflow_id)
    row = repository.version(session, workflow_id, version)
    if row is None:
        raise not_found("workflow version", version)
    return WorkflowVersionOut.of(row)

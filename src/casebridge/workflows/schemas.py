"""Response shapes for workflows, their versions and instances, and the inspector.

Requests carry a workflow definition (JSON, or YAML with ``Content-Type: application/yaml``): its format
is :class:`casebridge.workflows.definition.WorkflowDefinition`, documented in docs/workflows.md.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from casebridge.events.schemas import EventOut
from casebridge.kit.etag import etag_for
from casebridge.models import Workflow, WorkflowInstance, WorkflowStepLog, WorkflowVersion
from casebridge.workflows.definition import WorkflowDefinition


class WorkflowOut(BaseModel):
    id: uuid.UUID
    etag: str
    name: str
    description: str | None
    active: bool = Field(description="Inactive workflows start no instances; running ones carry on.")
    version: int = Field(description="The current version; a changed definition makes a new one.")
    definition: WorkflowDefinition = Field(description="The current version's definition, normalised.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, w: Workflow, v: WorkflowVersion) -> WorkflowOut:
        return cls(
            id=w.id,
            etag=etag_for(w.id, w.version),
            name=w.name,
            description=w.description,
            active=w.active,
            version=w.current_version,
            definition=WorkflowDefinition.model_validate(v.definition),
            created_at=w.created_at,
            updated_at=w.updated_at,
        )


class WorkflowVersionOut(BaseModel):
    workflow_id: uuid.UUID
    version: int
    definition: WorkflowDefinition
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, v: WorkflowVersion) -> WorkflowVersionOut:
        return cls(
            workflow_id=v.workflow_id,
            version=v.version,
            definition=WorkflowDefinition.model_validate(v.definition),
            created_by=v.created_by,
            created_at=v.created_at,
        )


class ValidationOut(BaseModel):
    valid: bool
    definition: WorkflowDefinition = Field(description="What would be stored: ids and defaults filled in.")


class StepLogOut(BaseModel):
    id: int
    step_id: str
    action: str
    status: str = Field(description="ok, failed (an attempt or the step), waiting or skipped.")
    input: Any = Field(description="What the step sent or did; secrets and auth headers are redacted.")
    output: Any = Field(description="What came back (an HTTP step: status, headers, body), redacted.")
    error: str | None
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, s: WorkflowStepLog) -> StepLogOut:
        return cls(
            id=s.id,
            step_id=s.step_id,
            action=s.action,
            status=s.status,
            input=s.input,
            output=s.output,
            error=s.error,
            started_at=s.started_at,
            finished_at=s.finished_at,
        )


class InstanceOut(BaseModel):
    id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    event_id: int | None = Field(description="The event that started it.")
    entity_type: str
    entity_id: str
    state: str = Field(description="running, waiting, completed, failed or cancelled.")
    variables: dict[str, Any] = Field(description="What steps captured (vars.* in templates).")
    position: str = Field(description="The next step's path (`2.then.0`: steps[2].then[0]).")
    wake_at: datetime | None = Field(description="While waiting: when it resumes.")
    error: str | None = Field(description="Why it failed.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def fields_of(cls, i: WorkflowInstance) -> dict[str, Any]:
        return {
            "id": i.id,
            "workflow_id": i.workflow_id,
            "workflow_version": i.workflow_version,
            "event_id": i.event_id,
            "entity_type": i.entity_type,
            "entity_id": i.entity_id,
            "state": i.state,
            "variables": i.variables or {},
            "position": ".".join(str(p) for p in (i.position or [])),
            "wake_at": i.wake_at,
            "error": i.error,
            "created_at": i.created_at,
            "updated_at": i.updated_at,
        }

    @classmethod
    def of(cls, i: WorkflowInstance) -> InstanceOut:
        return cls(**cls.fields_of(i))


class InstanceDetail(InstanceOut):
    steps: list[StepLogOut] = Field(description="The step log, oldest first.")

    @classmethod
    def with_steps(cls, i: WorkflowInstance, logs: list[WorkflowStepLog]) -> InstanceDetail:
        return cls(**cls.fields_of(i), steps=[StepLogOut.of(s) for s in logs])


class StepSummary(BaseModel):
    step_id: str
    action: str
    status: str
    error: str | None


class InstanceSummary(BaseModel):
    id: uuid.UUID
    state: str
    error: str | None
    steps: list[StepSummary]


class InspectionItem(BaseModel):
    workflow_id: uuid.UUID
    workflow_name: str
    workflow_version: int = Field(description="The version that decided (or, if not evaluated, the current).")
    active: bool
    evaluated: bool = Field(description="False when the engine never decided on this event (see reason).")
    matched: bool = Field(description="True when the event started an instance.")
    reason: str = Field(
        examples=[
            "event type activity.approved does not match trigger matter.*",
            'condition false: entity.total.amount > 1000 (where entity.total.amount = "250.00")',
            "skipped: single instance per entity, instance 7c… already completed for activity 1f…",
        ]
    )
    evaluated_at: datetime | None
    instance: InstanceSummary | None = Field(description="What the started instance did.")


class InspectionOut(BaseModel):
    event: EventOut
    workflows: list[InspectionItem]

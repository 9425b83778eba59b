"""All SQL for workflows, their versions, instances, step logs and evaluations."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from casebridge.models import Workflow, WorkflowEvaluation, WorkflowInstance, WorkflowStepLog, WorkflowVersion
from casebridge.workflows.definition import services_used

ORDER_COLUMNS = {"name": Workflow.name, "created_at": Workflow.created_at, "updated_at": Workflow.updated_at}
INSTANCE_ORDER = {"created_at": WorkflowInstance.created_at, "updated_at": WorkflowInstance.updated_at}
VERSION_ORDER = {"version": WorkflowVersion.version}
LIVE_STATES = ("running", "waiting")


def get(session: Session, workflow_id: uuid.UUID) -> Workflow | None:
    return session.get(Workflow, workflow_id)


def by_name(session: Session, name: str) -> Workflow | None:
    return session.scalar(select(Workflow).where(Workflow.name == name))


def version(session: Session, workflow_id: uuid.UUID, number: int) -> WorkflowVersion | None:
    return session.scalar(
        select(WorkflowVersion).where(
            WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == number
        )
    )


def current_definitions(session: Session, *, active_only: bool) -> list[tuple[Workflow, WorkflowVersion]]:
    stmt = (
        select(Workflow, WorkflowVersion)
        .join(
            WorkflowVersion,
            (WorkflowVersion.workflow_id == Workflow.id)
            & (WorkflowVersion.version == Workflow.current_version),
        )
        .order_by(Workflow.name)
    )
    if active_only:
        stmt = stmt.where(Workflow.active.is_(True))
    return [(w, v) for w, v in session.execute(stmt).all()]


def trigger_patterns(session: Session) -> list[str]:
    """Every event pattern of every active workflow (for the dispatcher's cheap filter)."""
    out: list[str] = []
    for _, v in current_definitions(session, active_only=True):
        event = (v.definition.get("trigger") or {}).get("event")
        out += [event] if isinstance(event, str) else list(event or [])
    return out


def names_using_service(session: Session, service: str) -> list[str]:
    return [
        w.name
        for w, v in current_definitions(session, active_only=False)
        if service in services_used(v.definition)
    ]


def list_query() -> Select[Workflow]:
    return select(Workflow)


def versions_query(workflow_id: uuid.UUID) -> Select[WorkflowVersion]:
    return select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id)


def instances_query(
    *,
    workflow_id: uuid.UUID | None = None,
    state: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    event_id: int | None = None,
) -> Select[WorkflowInstance]:
    stmt = select(WorkflowInstance)
    if workflow_id is not None:
        stmt = stmt.where(WorkflowInstance.workflow_id == workflow_id)
    if state is not None:
        stmt = stmt.where(WorkflowInstance.state == state)
    if entity_type is not None:
        stmt = stmt.where(WorkflowInstance.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(WorkflowInstance.entity_id == entity_id)
    if event_id is not None:
        stmt = stmt.where(WorkflowInstance.event_id == event_id)
    return stmt


def instance(
    session: Session, instance_id: uuid.UUID, *, for_update: bool = False
) -> WorkflowInstance | None:
    stmt = select(WorkflowInstance).where(WorkflowInstance.id == instance_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def step_logs(session: Session, instance_id: uuid.UUID) -> list[WorkflowStepLog]:
    return list(
        session.scalars(
            select(WorkflowStepLog)
            .where(WorkflowStepLog.instance_id == instance_id)
            .order_by(WorkflowStepLog.id)
        )
    )


def step_logs_for(session: Session, instance_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[WorkflowStepLog]]:
    out: dict[uuid.UUID, list[WorkflowStepLog]] = {i: [] for i in instance_ids}
    if not instance_ids:
        return out
    rows = session.scalars(
        select(WorkflowStepLog)
        .where(WorkflowStepLog.instance_id.in_(instance_ids))
        .order_by(WorkflowStepLog.id)
    )
    for row in rows:
        out[row.instance_id].append(row)
    return out


def evaluation(session: Session, event_id: int, workflow_id: uuid.UUID) -> WorkflowEvaluation | None:
    return session.scalar(
        select(WorkflowEvaluation)
        .where(WorkflowEvaluation.event_id == event_id, WorkflowEvaluation.workflow_id == workflow_id)
        .order_by(WorkflowEvaluation.id)
        .limit(1)
    )


def evaluations_for_event(session: Session, event_id: int) -> dict[uuid.UUID, WorkflowEvaluation]:
    out: dict[uuid.UUID, WorkflowEvaluation] = {}
    rows = session.scalars(
        select(WorkflowEvaluation)
        .where(WorkflowEvaluation.event_id == event_id)
        .order_by(WorkflowEvaluation.id)
    )
    for row in rows:
        out.setdefault(row.workflow_id, row)
    return out


def blocking_instance(
    session: Session, workflow_id: uuid.UUID, entity_type: str, entity_id: str
) -> WorkflowInstance | None:
    """An instance that makes a single-instance workflow skip: running, waiting or completed."""
    return session.scalar(
        select(WorkflowInstance)
        .where(
            WorkflowInstance.workflow_id == workflow_id,
            WorkflowInstance.entity_type == entity_type,
            WorkflowInstance.entity_id == entity_id,
            WorkflowInstance.state.in_(("running", "waiting", "completed")),
        )
        .order_by(WorkflowInstance.created_at)
        .limit(1)
    )


def instance_for_event(session: Session, workflow_id: uuid.UUID, event_id: int) -> WorkflowInstance | None:
    return session.scalar(
        select(WorkflowInstance).where(
            WorkflowInstance.workflow_id == workflow_id, WorkflowInstance.event_id == event_id
        )
    )


def definition_of(session: Session, inst: WorkflowInstance) -> dict[str, Any] | None:
    row = version(session, inst.workflow_id, inst.workflow_version)
    return row.definition if row is not None else None

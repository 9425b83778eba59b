"""Workflows: versioned definitions, their running instances with a step log, the inspector's record of
which workflows each event matched, and what workflow actions leave behind (matter notes, alerts)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from casebridge.db.types import BigIntPK, PortableJSON, UTCDateTime, utcnow
from casebridge.models.base import Base, IdMixin, TimestampMixin, VersionedMixin


class Workflow(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "workflows"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    current_version: Mapped[int] = mapped_column(default=1)


class WorkflowVersion(IdMixin, Base):
    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "version"),)

    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int]
    definition: Mapped[dict[str, Any]] = mapped_column(PortableJSON)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WorkflowInstance(IdMixin, TimestampMixin, Base):
    __tablename__ = "workflow_instances"
    __table_args__ = (
        Index("ix_workflow_instances_entity", "workflow_id", "entity_type", "entity_id"),
        Index("ix_workflow_instances_state", "state", "wake_at"),
    )

    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    workflow_version: Mapped[int]
    event_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    entity_type: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(64))
    # running | waiting | completed | failed | cancelled
    state: Mapped[str] = mapped_column(String(10))
    variables: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    # Where the instance is: the path of the next step to run (engine-defined).
    position: Mapped[list[Any]] = mapped_column(PortableJSON, default=list)
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


class WorkflowStepLog(Base):
    __tablename__ = "workflow_step_logs"
    __table_args__ = (
        Index("ix_workflow_step_logs_instance", "instance_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflow_instances.id", ondelete="CASCADE"))
    step_id: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(10))  # ok | failed | skipped | waiting
    input: Mapped[Any | None] = mapped_column(PortableJSON)
    output: Mapped[Any | None] = mapped_column(PortableJSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkflowEvaluation(Base):
    """For the inspector: what each workflow decided about each event, and why."""

    __tablename__ = "workflow_evaluations"
    __table_args__ = (
        Index("ix_workflow_evaluations_event", "event_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    workflow_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    workflow_version: Mapped[int]
    matched: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text)
    instance_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("workflow_instances.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MatterNote(IdMixin, Base):
    """An entry in a matter's history written by a person or a workflow."""

    __tablename__ = "matter_notes"

    matter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("matters.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Alert(IdMixin, Base):
    """Raised by a workflow (for example actual fees passing the estimate), listed per matter."""

    __tablename__ = "alerts"

    matter_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("matters.id", ondelete="CASCADE"), index=True
    )
    entity_type: Mapped[str | None] = mapped_column(String(50))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(10), default="warning")  # info | warning | critical
    message: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

"""The durable job queue's tables: jobs, and the slots recurring tasks have already been given."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from casebridge.db.types import BigIntPK, PortableJSON, UTCDateTime, utcnow
from casebridge.models.base import Base

AVAILABLE = "available"
RUNNING = "running"
COMPLETED = "completed"
DEAD = "dead"
CANCELLED = "cancelled"
JOB_STATES = (AVAILABLE, RUNNING, COMPLETED, DEAD, CANCELLED)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # The claim query: available jobs of some queues, due, best priority first.
        Index(
            "ix_jobs_claim",
            "queue",
            "priority",
            "run_at",
            "id",
            sqlite_where=text("state = 'available'"),
            postgresql_where=text("state = 'available'"),
        ),
        # The same for a worker that takes every queue (the default).
        Index(
            "ix_jobs_claim_any_queue",
            "priority",
            "run_at",
            "id",
            sqlite_where=text("state = 'available'"),
            postgresql_where=text("state = 'available'"),
        ),
        # Enqueueing is a no-op while an identical job waits.
        Index(
            "uq_jobs_unique_key_waiting",
            "unique_key",
            unique=True,
            sqlite_where=text("state = 'available'"),
            postgresql_where=text("state = 'available'"),
        ),
        # At most one running job per concurrency key, enforced by the database itself.
        Index(
            "uq_jobs_concurrency_key_running",
            "concurrency_key",
            unique=True,
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
        Index("ix_jobs_state_locked_until", "state", "locked_until"),
        Index("ix_jobs_state_finished_at", "state", "finished_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(50), default="default")
    kind: Mapped[str] = mapped_column(String(100))
    args: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    priority: Mapped[int] = mapped_column(default=100)
    state: Mapped[str] = mapped_column(String(10), default=AVAILABLE)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=20)
    unique_key: Mapped[str | None] = mapped_column(String(255))
    concurrency_key: Mapped[str | None] = mapped_column(String(255))
    locked_by: Mapped[str | None] = mapped_column(String(100))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(PortableJSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RecurringSlot(Base):
    """One row per (recurring task, scheduled time) ever enqueued: the once-per-slot guarantee."""

    __tablename__ = "recurring_slots"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    slot_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

"""The public shape of a job (the background work queue), for inspection, retry and discard."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from casebridge.models import Job


class JobState(StrEnum):
    available = "available"
    running = "running"
    completed = "completed"
    dead = "dead"
    cancelled = "cancelled"


class JobError(BaseModel):
    attempt: int | None = Field(default=None, description="The attempt that failed (1 for the first).")
    at: datetime | None = Field(default=None, description="When it failed.")
    error: str = Field(description="The error: exception type and message, and the last frames.")

    @classmethod
    def of(cls, raw: dict[str, Any]) -> JobError:
        return cls(attempt=raw.get("attempt"), at=raw.get("at"), error=str(raw.get("error", "")))


class JobSummary(BaseModel):
    """A job in a list: everything but its arguments and error history (see GET /jobs/{id})."""

    id: int
    kind: str = Field(examples=["events.deliver"])
    queue: str = Field(examples=["default"])
    state: JobState = Field(
        description="available (waiting for its run_at), running, completed, dead (out of attempts or "
        "given up; kept for inspection: retry or discard it) or cancelled."
    )
    priority: int = Field(description="Lower runs first: 0 interactive, 100 default, 200 bulk.")
    attempts: int = Field(description="Attempts used so far.")
    max_attempts: int
    run_at: datetime = Field(description="When it is (or was) due.")
    last_error: str | None
    created_at: datetime
    started_at: datetime | None = Field(description="When its latest attempt started.")
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Job) -> JobSummary:
        return cls.model_validate(_common(row))


class JobOut(JobSummary):
    args: dict[str, Any] = Field(description="What the handler receives.")
    errors: list[JobError] = Field(description="The latest failed attempts, oldest first (up to 10).")
    unique_key: str | None = Field(description="At most one job with this key waits at a time.")
    concurrency_key: str | None = Field(description="At most one job with this key runs at a time.")
    locked_by: str | None = Field(description="The worker running it (while running).")
    locked_until: datetime | None = Field(description="Its lease: another worker takes it over after this.")

    @classmethod
    def of(cls, row: Job) -> JobOut:
        return cls.model_validate(
            {
                **_common(row),
                "args": row.args,
                "errors": [JobError.of(e) for e in row.errors or [] if isinstance(e, dict)],
                "unique_key": row.unique_key,
                "concurrency_key": row.concurrency_key,
                "locked_by": row.locked_by,
                "locked_until": row.locked_until,
            }
        )


def _common(row: Job) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "queue": row.queue,
        "state": row.state,
        "priority": row.priority,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "run_at": row.run_at,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }

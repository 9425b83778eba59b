"""/api/v1/jobs: inspect the job queue, and retry or discard a job (dead jobs are kept for this).

Reads are for admins and integrations (monitoring); retry and discard are for admins. The same
operations are on the command line as ``casebridge jobs list|retry|discard``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from casebridge.jobs import queue
from casebridge.jobs.schemas import JobOut, JobState, JobSummary
from casebridge.kit.context import Role
from casebridge.kit.deps import Require, SessionDep
from casebridge.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, paginate
from casebridge.kit.problems import Problem, not_found
from casebridge.kit.uow import ApiRoute
from casebridge.models import Job

router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=ApiRoute)
READ = [Depends(Require(Role.ADMIN, Role.INTEGRATION))]
ADMIN = [Depends(Require(Role.ADMIN))]
INVALID_STATE = "invalid-state"


def _get_or_404(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id, populate_existing=True)
    if job is None:
        raise not_found("job", job_id)
    return job


@router.get("", dependencies=READ)
def list_jobs(
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    state: JobState | None = None,
    queue_name: Annotated[str | None, Query(alias="queue", max_length=50)] = None,
    kind: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[JobSummary]:
    """Jobs, newest first (by id), optionally only one state, queue or kind. Dead jobs are kept here
    until retried or discarded; completed ones are pruned after a day."""
    stmt = select(Job)
    if state is not None:
        stmt = stmt.where(Job.state == state.value)
    if queue_name is not None:
        stmt = stmt.where(Job.queue == queue_name)
    if kind is not None:
        stmt = stmt.where(Job.kind == kind)
    page = paginate(
        session, stmt, columns={"id": Job.id}, id_column=Job.id, order="-id", limit=limit, cursor=cursor
    )
    return Page(data=[JobSummary.of(j) for j in page.rows], next_cursor=page.next_cursor)


@router.get("/{job_id}", dependencies=READ)
def get_job(session: SessionDep, job_id: int) -> JobOut:
    """One job with its arguments, attempts, the errors of its latest failed attempts and timestamps."""
    return JobOut.of(_get_or_404(session, job_id))


@router.post("/{job_id}/retry", dependencies=ADMIN)
def retry_job(session: SessionDep, job_id: int) -> JobOut:
    """Queue a dead or cancelled job again at once, with fresh attempts. 409 in any other state.

    If an identical job (same unique key) is already waiting, that one runs instead and this one
    stays cancelled, marked as superseded."""
    job = _get_or_404(session, job_id)
    if not queue.retry(session, job_id):
        raise Problem(
            409,
            f"Job {job_id} is {job.state}; only a dead or cancelled job can be retried.",
            slug=INVALID_STATE,
            extra={"state": job.state},
        )
    return JobOut.of(_get_or_404(session, job_id))


@router.post("/{job_id}/discard", dependencies=ADMIN)
def discard_job(session: SessionDep, job_id: int) -> JobOut:
    """Cancel a waiting (available) or dead job; it stays visible as cancelled until pruned. A running
    job cannot be discarded (409): its worker owns it until it finishes or its lease expires."""
    job = _get_or_404(session, job_id)
    if not queue.discard(session, job_id):
        raise Problem(
            409,
            f"Job {job_id} is {job.state}; only a waiting or dead job can be discarded.",
            slug=INVALID_STATE,
            extra={"state": job.state},
        )
    return JobOut.of(_get_or_404(session, job_id))

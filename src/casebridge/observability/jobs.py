"""What the job worker reports: the job's ids on its log lines, and wait/run/outcome metrics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from casebridge.observability.logging import job_id_var, job_kind_var
from casebridge.observability.metrics import JOB_OUTCOMES, JOB_RUN, JOB_WAIT, job_outcome_label

if TYPE_CHECKING:
    from casebridge.jobs.queue import ClaimedJob


@contextmanager
def job_scope(job: ClaimedJob) -> Iterator[None]:
    """While a worker thread runs ``job``: its log lines carry ``job_id`` and ``job_kind``, and its wait
    (claimed at ``started_at``, due at ``run_at``) is observed once."""
    if job.run_at is not None and job.started_at is not None:
        JOB_WAIT.observe(max(0.0, (job.started_at - job.run_at).total_seconds()), kind=job.kind)
    id_token, kind_token = job_id_var.set(job.id), job_kind_var.set(job.kind)
    try:
        yield
    finally:
        job_kind_var.reset(kind_token)
        job_id_var.reset(id_token)


def job_finished(kind: str, outcome: str, run_seconds: float) -> None:
    """``outcome`` as the worker's record step reports it (completed, snoozed, available, merged, dead,
    lost, unrecorded); counted as completed, snoozed, retry, dead, lost or unrecorded."""
    JOB_RUN.observe(run_seconds, kind=kind)
    JOB_OUTCOMES.inc(kind=kind, outcome=job_outcome_label(outcome))

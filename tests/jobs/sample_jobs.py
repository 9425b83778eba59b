"""Job kinds used by the worker-process tests (loaded with CASEBRIDGE_JOB_MODULES)."""

from __future__ import annotations

import time

from casebridge.events import record_event
from casebridge.jobs.registry import JobRegistry
from casebridge.jobs.worker import JobContext


def record(ctx: JobContext) -> None:
    time.sleep(float(ctx.args.get("sleep", 0.02)))
    with ctx.unit_of_work() as session:
        record_event(session, "test.job_ran", "job", ctx.job.id, {"attempt": ctx.job.attempt})


def keyed(ctx: JobContext) -> None:
    start = time.time()
    time.sleep(float(ctx.args.get("sleep", 0.03)))
    end = time.time()
    with ctx.unit_of_work() as session:
        record_event(
            session, "test.keyed_ran", "job", ctx.job.id, {"key": ctx.args["key"], "start": start, "end": end}
        )


def register(registry: JobRegistry) -> None:
    registry.register("test.record", record)
    registry.register("test.keyed", keyed)

"""Job kinds for the observability tests' worker processes (CASEBRIDGE_JOB_MODULES)."""

from __future__ import annotations

import logging

from casebridge.jobs.errors import GiveUp
from casebridge.jobs.registry import JobRegistry
from casebridge.jobs.worker import JobContext

log = logging.getLogger("casebridge.tests.jobs")


def chatty(ctx: JobContext) -> None:
    log.info("hello from job %s", ctx.job.id, extra={"n": ctx.args.get("n")})


def doomed(ctx: JobContext) -> None:
    raise GiveUp("this job cannot succeed")


def register(registry: JobRegistry) -> None:
    registry.register("obs.chatty", chatty)
    registry.register("obs.doomed", doomed)

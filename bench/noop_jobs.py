"""The no-op job kind of bench/jobs.py, loaded by `casebridge worker` via CASEBRIDGE_JOB_MODULES."""

from __future__ import annotations

from casebridge.jobs.registry import JobRegistry
from casebridge.jobs.worker import JobContext

KIND = "bench.noop"


def noop(ctx: JobContext) -> None:
    return None


def register(registry: JobRegistry) -> None:
    registry.register(KIND, noop)

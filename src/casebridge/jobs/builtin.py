"""The job kinds and recurring tasks Casebridge itself needs, and loading extra job modules.

``CASEBRIDGE_JOB_MODULES`` (comma-separated module names) lets a deployment, or a test, add job kinds:
each module exposes ``register(registry)``.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

from casebridge.config import Settings
from casebridge.db.types import utcnow
from casebridge.events import delivery
from casebridge.jobs.registry import JobRegistry
from casebridge.jobs.worker import JobContext
from casebridge.webhooks import subscriber as webhooks_subscriber
from casebridge.workflows import subscriber as workflows_subscriber


def purge_documents(ctx: JobContext) -> None:
    from casebridge.documents.service import purge_expired

    if ctx.settings is None:
        return
    with ctx.unit_of_work() as session:
        purge_expired(session, ctx.settings, utcnow())


def purge_idempotency_keys(ctx: JobContext) -> None:
    from casebridge.kit.uow import purge_expired_keys

    with ctx.unit_of_work() as session:
        purge_expired_keys(session)


def prune_jobs(ctx: JobContext) -> None:
    from casebridge.jobs.queue import prune_finished

    with ctx.unit_of_work() as session:
        prune_finished(session, timedelta(days=int(ctx.args.get("days", 1))))


def build_registry(settings: Settings | None = None) -> JobRegistry:
    registry = JobRegistry()
    registry.register("documents.purge", purge_documents)
    registry.register("platform.purge_idempotency_keys", purge_idempotency_keys)
    registry.register("jobs.prune", prune_jobs)
    delivery.register_jobs(registry)
    webhooks_subscriber.register(registry)
    workflows_subscriber.register(registry)
    from casebridge.sync import tasks as sync_tasks

    sync_tasks.register(registry)
    registry.every("documents-purge", "documents.purge", "15 3 * * *", priority=200)
    registry.every("idempotency-keys-purge", "platform.purge_idempotency_keys", "@hourly", priority=200)
    registry.every("jobs-prune", "jobs.prune", "30 * * * *", priority=200)
    modules = settings.job_modules if settings is not None else []
    for name in modules:
        importlib.import_module(name).register(registry)
    return registry

"""Registers this package's event subscriber kind and job kinds (called by jobs.builtin.build_registry).

- subscriber kind ``workflows`` (one subscription row, made with the first workflow): decides which
  workflows each event starts (:func:`casebridge.workflows.engine.deliver`);
- job ``workflows.run``: advances one instance (one running job per instance).
"""

from __future__ import annotations

from casebridge.events.delivery import SubscriberKind, register_kind
from casebridge.jobs.registry import JobRegistry
from casebridge.workflows import engine


def register(registry: JobRegistry) -> None:
    register_kind(
        SubscriberKind(
            name="workflows",
            wants=engine.wants,
            deliver=engine.deliver,
            max_attempts=20,
            backoff_base=1.0,
            backoff_cap=600.0,
        )
    )
    registry.register(
        engine.RUN,
        engine.run,
        backoff_base=1.0,
        backoff_cap=300.0,
        keep_completed=False,
        on_dead=engine.on_run_dead,
    )

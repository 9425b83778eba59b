"""Registers this package's event subscriber kind and job kinds (called by jobs.builtin.build_registry)."""

from __future__ import annotations

from casebridge.jobs.registry import JobRegistry


def register(registry: JobRegistry) -> None:
    """Filled in as the package is built."""

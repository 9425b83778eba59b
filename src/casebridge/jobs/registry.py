"""What each job kind runs, and the recurring tasks. An explicit registry: no discovery magic."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from casebridge.jobs.cron import Schedule
from casebridge.jobs.queue import DEFAULT_PRIORITY


@dataclass(frozen=True)
class JobSpec:
    kind: str
    handler: Callable[[Any], None]
    backoff_base: float = 1.0
    backoff_cap: float = 3600.0
    # False for high-volume internal jobs (event dispatch): their row is deleted when they succeed.
    keep_completed: bool = True
    # Called in the transaction that makes a job of this kind ``dead`` (out of attempts, including a
    # worker killed during the last one), with the job's args and last error: for example to fail the
    # workflow instance the job was running, so nothing is left "running" forever.
    on_dead: Callable[[Session, dict[str, Any], str], None] | None = None


@dataclass(frozen=True)
class RecurringTask:
    name: str
    kind: str
    schedule: Schedule
    args: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = DEFAULT_PRIORITY


class JobRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, JobSpec] = {}
        self.recurring: list[RecurringTask] = []

    def register(self, kind: str, handler: Callable[[Any], None], **options: Any) -> None:
        if kind in self._specs:
            raise ValueError(f"job kind {kind!r} is registered twice")
        self._specs[kind] = JobSpec(kind, handler, **options)

    def job(self, kind: str, **options: Any) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
        def decorate(fn: Callable[[Any], None]) -> Callable[[Any], None]:
            self.register(kind, fn, **options)
            return fn

        return decorate

    def every(self, name: str, kind: str, schedule: str, **options: Any) -> None:
        if kind not in self._specs:
            raise ValueError(f"recurring task {name!r} names an unregistered job kind {kind!r}")
        self.recurring.append(RecurringTask(name, kind, Schedule.parse(schedule), **options))

    def get(self, kind: str) -> JobSpec | None:
        return self._specs.get(kind)

    @property
    def kinds(self) -> list[str]:
        return sorted(self._specs)

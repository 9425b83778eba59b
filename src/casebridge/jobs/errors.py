"""Typed outcomes a job handler raises to tell the worker what to do next."""

from __future__ import annotations


class JobOutcome(Exception):
    pass


class RetryLater(JobOutcome):
    """Count this attempt as failed and retry after ``seconds`` (for example a 429's Retry-After)."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = seconds


class Snooze(JobOutcome):
    """Not now, and not a failure: run again after ``seconds`` without using an attempt."""

    def __init__(self, seconds: float, reason: str = "snoozed") -> None:
        super().__init__(reason)
        self.seconds = seconds


class GiveUp(JobOutcome):
    """Retrying cannot help (bad input, needs a person): go to ``dead`` now, kept for inspection."""

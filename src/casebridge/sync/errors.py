"""Typed errors that tell a reconcile (and the worker running it) what to do next."""

from __future__ import annotations


class SyncError(Exception):
    """Base class of everything the sync engine raises on purpose."""


class RateLimited(SyncError):
    """No request may be sent now; try again after ``seconds`` (the budget's reset or a Retry-After)."""

    def __init__(self, seconds: float, reason: str = "rate limit budget spent") -> None:
        super().__init__(reason)
        self.seconds = max(0.0, seconds)


class Transient(SyncError):
    """A failure that retrying may fix: a 5xx, a timeout, a dropped connection.

    ``unknown_outcome`` is set when a write may or may not have taken effect (no response arrived)."""

    def __init__(self, message: str, *, unknown_outcome: bool = False) -> None:
        super().__init__(message)
        self.unknown_outcome = unknown_outcome


class NeedsPerson(SyncError):
    """The other side refused the data (a validation error): retrying the same data cannot help."""


class Unauthorized(SyncError):
    """The grant is gone (401 after a refresh): the connection needs to be authorized again."""


class NotFound(SyncError):
    """The remote record does not exist (404)."""


class PreconditionFailed(SyncError):
    """The remote record changed since the etag we sent (412)."""


class LeaseBusy(SyncError):
    """Another worker is reconciling this record right now (or creating the record it stands for)."""


class NeedsDependency(SyncError):
    """A referenced record (a matter's client) must be synced first."""

    def __init__(self, entity: str, *, local_id: object = None, remote_id: int | None = None) -> None:
        super().__init__(f"needs {entity} {local_id or remote_id} synced first")
        self.entity = entity
        self.local_id = local_id
        self.remote_id = remote_id

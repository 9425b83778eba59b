"""Clio webhooks: the handshake, signed deliveries filtered by ``fields``, retries, expiry."""

from __future__ import annotations

from casebridge.sandbox.clio.faults import Faults
from casebridge.sandbox.clio.state import Record, SandboxState


class Dispatcher:
    def __init__(self, state: SandboxState, faults: Faults) -> None:
        self.state = state
        self.faults = faults
        state.listeners.append(self.notify)

    def notify(self, kind: str, event: str, record: Record, before: Record | None) -> None:
        return None

    def stop(self) -> None:
        return None

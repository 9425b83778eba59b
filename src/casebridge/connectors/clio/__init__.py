"""The Clio Manage connector: OAuth, an API client with the shared rate budget, the contact and matter
resources, webhooks, and the connection service (README.md beside this file)."""

from __future__ import annotations

import uuid
from typing import Any

from casebridge.connectors.clio.client import ClioClient, Runtime
from casebridge.connectors.clio.resources import REMOTES
from casebridge.sync.entities import RemoteAdapter

VENDOR = "clio"


class ClioConnector:
    """What the sync engine asks of a vendor (sync.engine.Connector)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._base_urls: dict[uuid.UUID, tuple[str, str]] = {}

    def client(self, connection_id: uuid.UUID, *, bulk: bool, calls: list[Any]) -> ClioClient:
        known = self._base_urls.get(connection_id)
        if known is None:
            probe = ClioClient.for_connection(self.runtime, connection_id)
            known = self._base_urls[connection_id] = (probe.api.removesuffix("/api/v4"), probe.api_version)
        return ClioClient(self.runtime, connection_id, known[0], api_version=known[1], bulk=bulk, calls=calls)

    def remote(self, entity: str) -> RemoteAdapter:
        return REMOTES[entity]

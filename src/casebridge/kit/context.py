"""Per-process application context and per-request principal, reachable from any request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import Request

from casebridge.config import Settings
from casebridge.db.session import Database
from casebridge.kit.crypto import SecretBox


class Role(StrEnum):
    ADMIN = "admin"
    STAFF = "staff"
    INTEGRATION = "integration"
    READ_ONLY = "read-only"


ALL_ROLES: tuple[Role, ...] = tuple(Role)
WRITERS: tuple[Role, ...] = (Role.ADMIN, Role.STAFF, Role.INTEGRATION)


@dataclass(frozen=True)
class Principal:
    token_id: uuid.UUID
    name: str
    role: Role
    user_id: uuid.UUID | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role.value})"


@dataclass
class AppContext:
    settings: Settings
    db: Database
    secrets: SecretBox


def app_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx

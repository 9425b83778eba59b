"""A connection's sync settings (stored as JSON on the connection; changed by PATCH)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from casebridge.sync.merge import Policy

Entity = Literal["contact", "matter"]
ENTITIES: tuple[Entity, ...] = ("contact", "matter")
DeletePolicy = Literal["unlink", "propagate", "ignore"]


def _hold() -> dict[Entity, Policy]:
    return {"contact": "hold", "matter": "hold"}


def _unlink() -> dict[Entity, DeletePolicy]:
    return {"contact": "unlink", "matter": "unlink"}


class SyncSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conflict_policy: dict[Entity, Policy] = Field(
        default_factory=_hold,
        description="Per entity, when both sides changed a field since the last sync: hold (for review), "
        "casebridge_wins, clio_wins or newest_wins.",
    )
    delete_policy: dict[Entity, DeletePolicy] = Field(
        default_factory=_unlink,
        description="Per entity, what a delete on one side does: unlink (the link ends, the other side "
        "keeps its record), propagate (the delete crosses) or ignore (nothing happens).",
    )
    auto_sync_clients: bool = Field(
        default=True,
        description="A matter whose client is not synced yet syncs the client first; when false the "
        "matter is refused with a 422 naming the client.",
    )
    poll_interval_seconds: float = Field(default=60.0, ge=1, le=3600)
    poll_lag_seconds: float = Field(default=5.0, ge=0, le=600)
    full_reconcile_hours: float = Field(default=6.0, gt=0, le=24 * 7)
    webhooks: bool = Field(
        default=True,
        description="Receive Clio's webhooks (needs CASEBRIDGE_PUBLIC_URL); polling runs either way.",
    )

    def conflict(self, entity: str) -> Policy:
        return next((p for e, p in self.conflict_policy.items() if e == entity), "hold")

    def on_delete(self, entity: str) -> DeletePolicy:
        return next((p for e, p in self.delete_policy.items() if e == entity), "unlink")


class SyncSettingsPatch(BaseModel):
    """Only the settings sent change; per-entity maps merge into the current ones."""

    model_config = ConfigDict(extra="forbid")

    conflict_policy: dict[Entity, Policy] | None = None
    delete_policy: dict[Entity, DeletePolicy] | None = None
    auto_sync_clients: bool | None = None
    poll_interval_seconds: float | None = Field(default=None, ge=1, le=3600)
    poll_lag_seconds: float | None = Field(default=None, ge=0, le=600)
    full_reconcile_hours: float | None = Field(default=None, gt=0, le=24 * 7)
    webhooks: bool | None = None

    def apply(self, current: SyncSettings) -> SyncSettings:
        data = current.model_dump()
        for key, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return SyncSettings.model_validate(data)

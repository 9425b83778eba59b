"""Request and response shapes of connections, per-record sync status, conflicts and the journal."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from casebridge.kit.schemas import StrictModel
from casebridge.models import Connection, SyncConflict, SyncJournal, SyncLink
from casebridge.sync.settings import SyncSettings, SyncSettingsPatch


class ConnectionCreate(StrictModel):
    vendor: Literal["clio"] = "clio"
    name: str = Field(default="Clio Manage", min_length=1, max_length=200)
    region: Literal["us", "ca", "eu", "au"] | None = Field(
        default=None, description="Clio's data region (default us); or give base_url."
    )
    base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(:\d+)?/?$",
        description="Clio's host, e.g. a sandbox at http://127.0.0.1:8765 (instead of region).",
    )
    client_id: str = Field(min_length=1, max_length=300)
    client_secret: str = Field(min_length=1, max_length=500)
    redirect_uri: str | None = Field(
        default=None,
        max_length=2000,
        description="Registered on the Clio app; default {CASEBRIDGE_PUBLIC_URL}/oauth/clio/callback.",
    )
    settings: SyncSettings | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ConnectionCreate:
        if self.region and self.base_url:
            raise ValueError("give region or base_url, not both")
        return self


class ConnectionPatch(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    settings: SyncSettingsPatch | None = None


class ConnectionOut(BaseModel):
    id: uuid.UUID
    vendor: str
    name: str
    state: str
    region: str | None
    base_url: str
    api_version: str
    remote_user_name: str | None
    remote_account_name: str | None
    token_expires_at: datetime | None
    settings: SyncSettings
    connected_at: datetime | None
    disconnected_at: datetime | None
    last_error: str | None
    authorize_url: str | None = None

    @classmethod
    def of(cls, c: Connection, authorize_url: str | None = None) -> ConnectionOut:
        return cls(
            id=c.id,
            vendor=c.vendor,
            name=c.name,
            state=c.state,
            region=c.region,
            base_url=c.base_url,
            api_version=c.api_version,
            remote_user_name=c.remote_user_name,
            remote_account_name=c.remote_account_name,
            token_expires_at=c.token_expires_at,
            settings=SyncSettings.model_validate(c.settings or {}),
            connected_at=c.connected_at,
            disconnected_at=c.disconnected_at,
            last_error=c.last_error,
            authorize_url=authorize_url,
        )


class ConflictOut(BaseModel):
    id: uuid.UUID
    entity: str
    local_id: uuid.UUID | None
    remote_id: int | None
    field: str
    base_value: Any
    local_value: Any
    remote_value: Any
    state: str
    resolution: str | None
    resolved_value: Any
    resolved_at: datetime | None
    resolved_by: str | None
    applied_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, c: SyncConflict) -> ConflictOut:
        return cls(
            id=c.id,
            entity=c.entity,
            local_id=c.local_id,
            remote_id=c.remote_id,
            field=c.field,
            base_value=c.base_value,
            local_value=c.local_value,
            remote_value=c.remote_value,
            state=c.state,
            resolution=c.resolution,
            resolved_value=c.resolved_value,
            resolved_at=c.resolved_at,
            resolved_by=c.resolved_by,
            applied_at=c.applied_at,
            created_at=c.created_at,
        )


class ConflictResolve(StrictModel):
    """Pick a side, or give the value both sides should hold."""

    pick: Literal["casebridge", "clio"] | None = None
    value: Any = None

    @model_validator(mode="after")
    def _one(self) -> ConflictResolve:
        if (self.pick is None) == ("value" not in self.model_fields_set):
            raise ValueError("send either pick (casebridge or clio) or value")
        return self


class JournalOut(BaseModel):
    id: int
    at: datetime
    trigger: str
    action: str
    summary: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, j: SyncJournal) -> JournalOut:
        return cls(id=j.id, at=j.at, trigger=j.trigger, action=j.action, summary=j.summary, detail=j.detail)


class LinkOut(BaseModel):
    id: uuid.UUID
    connection_id: uuid.UUID
    entity: str
    local_id: uuid.UUID | None
    remote_id: int | None
    state: str
    remote_etag: str | None
    remote_updated_at: datetime | None
    last_synced_at: datetime | None
    error: str | None
    error_count: int
    next_retry_at: datetime | None
    unlinked_reason: str | None
    pending_create: bool

    @classmethod
    def of(cls, link: SyncLink) -> LinkOut:
        return cls(
            id=link.id,
            connection_id=link.connection_id,
            entity=link.entity,
            local_id=link.local_id,
            remote_id=link.remote_id,
            state=link.state,
            remote_etag=link.remote_etag,
            remote_updated_at=link.remote_updated_at,
            last_synced_at=link.last_synced_at,
            error=link.error,
            error_count=link.error_count,
            next_retry_at=link.next_retry_at,
            unlinked_reason=link.unlinked_reason,
            pending_create=link.intent is not None,
        )


class SyncStatusOut(BaseModel):
    """A record's sync with the connected system."""

    entity: str
    local_id: uuid.UUID
    connection_id: uuid.UUID | None
    state: str = Field(description="not_synced, pending, linked, conflict, error or unlinked")
    link: LinkOut | None
    conflicts: list[ConflictOut]
    journal: list[JournalOut]


class RecordSync(StrictModel):
    """Start syncing a record that existed before the connection, or link it to an existing Clio
    record (``remote_id``); for a record already synced, reconcile it now."""

    remote_id: int | None = Field(default=None, ge=1)


class BackfillIn(StrictModel):
    entity: Literal["contact", "matter", "all"] = Field(
        default="all", description="matter (and all) take the matters' clients first."
    )
    direction: Literal["push", "pull", "both"] = "both"


class WebhookHealth(BaseModel):
    model: str
    remote_id: int | None
    status: str
    expires_at: datetime | None
    last_delivery_at: datetime | None
    deliveries: int


class StreamHealth(BaseModel):
    entity: str
    poll_cursor: datetime | None
    last_poll_at: datetime | None
    last_poll_error: str | None
    poll_lag_seconds: float | None
    last_full_at: datetime | None
    full_in_progress: bool
    backfill: dict[str, Any] | None


class HealthOut(BaseModel):
    connection: ConnectionOut
    healthy: bool
    problems: list[str]
    webhooks: list[WebhookHealth]
    streams: list[StreamHealth]
    queue: dict[str, dict[str, int]]
    lag_seconds: float = Field(
        description="how long the oldest change due to sync has waited for its reconcile (0: none waiting)"
    )
    rate_limit: dict[str, Any] | None
    links: dict[str, dict[str, int]]
    open_conflicts: int
    recent_errors: list[JournalOut]

"""Connections to practice-management systems and the two-way sync state (docs/sync.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from casebridge.db.types import BigIntPK, PortableJSON, UTCDateTime, utcnow
from casebridge.models.base import Base, IdMixin, TimestampMixin, VersionedMixin

# Connection states
AUTHORIZING = "authorizing"
CONNECTED = "connected"
NEEDS_REAUTHORIZATION = "needs_reauthorization"
DISCONNECTED = "disconnected"

# Link states
PENDING = "pending"
LINKED = "linked"
CONFLICT = "conflict"
ERROR = "error"
UNLINKED = "unlinked"
LINK_STATES = (PENDING, LINKED, CONFLICT, ERROR, UNLINKED)


class Connection(IdMixin, TimestampMixin, VersionedMixin, Base):
    """One practice-management account we sync with (Clio Manage), its OAuth grant and settings."""

    __tablename__ = "connections"

    vendor: Mapped[str] = mapped_column(String(20))  # clio
    name: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(30), index=True)
    region: Mapped[str | None] = mapped_column(String(10))
    base_url: Mapped[str] = mapped_column(String(500))  # the host: https://app.clio.com
    api_version: Mapped[str] = mapped_column(String(20))
    client_id: Mapped[str] = mapped_column(String(300))
    client_secret_encrypted: Mapped[str] = mapped_column(Text)
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    oauth_state: Mapped[str | None] = mapped_column(String(100), unique=True)
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    remote_user_id: Mapped[int | None] = mapped_column(BigInteger)
    remote_user_name: Mapped[str | None] = mapped_column(String(300))
    remote_account_name: Mapped[str | None] = mapped_column(String(300))
    settings: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # On Clio's clock: Clio records created before this are history, synced only on request (backfill).
    history_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disconnected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncLink(IdMixin, TimestampMixin, Base):
    """A synced record's identity on both sides, its merge base and its newest remote snapshot."""

    __tablename__ = "sync_links"
    __table_args__ = (
        UniqueConstraint("connection_id", "entity", "local_id"),
        UniqueConstraint("connection_id", "entity", "remote_id"),
        Index("ix_sync_links_state", "connection_id", "entity", "state"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(30))
    local_id: Mapped[uuid.UUID | None]
    remote_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(20), default=PENDING)
    # Canonical field values both sides last agreed on; None before the first sync.
    base: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    # The newest remote record seen: {"values": canonical, "raw": vendor ids of nested items}.
    remote: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    remote_etag: Mapped[str | None] = mapped_column(String(200))
    remote_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Two snapshots with one updated_at and different etags: the next reconcile reads the record.
    remote_stale: Mapped[bool] = mapped_column(default=False)
    remote_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a full reconcile last listed this remote record (deletion detection).
    remote_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set before a remote create: {"at": iso, "values": canonical}; cleared when the create is recorded.
    intent: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)
    # A hand-made link whose first reconcile must compare without a base (differences are conflicts).
    adopt: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    error_count: Mapped[int] = mapped_column(default=0)
    next_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unlinked_reason: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncConflict(IdMixin, TimestampMixin, Base):
    """A field both sides changed since the base, held for a person (policy ``hold``)."""

    __tablename__ = "sync_conflicts"
    __table_args__ = (
        Index(
            "uq_sync_conflicts_open",
            "link_id",
            "field",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        Index("ix_sync_conflicts_connection", "connection_id", "state", "created_at"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    link_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sync_links.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(30))
    local_id: Mapped[uuid.UUID | None]
    remote_id: Mapped[int | None] = mapped_column(BigInteger)
    field: Mapped[str] = mapped_column(String(100))
    base_value: Mapped[Any] = mapped_column(PortableJSON, nullable=True)
    local_value: Mapped[Any] = mapped_column(PortableJSON, nullable=True)
    remote_value: Mapped[Any] = mapped_column(PortableJSON, nullable=True)
    state: Mapped[str] = mapped_column(String(10), default="open")  # open | resolved
    # casebridge | clio | value (a person chose) | agreed (both sides came to agree) | policy
    resolution: Mapped[str | None] = mapped_column(String(20))
    resolved_value: Mapped[Any] = mapped_column(PortableJSON, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    # When the resolution was written to both sides (a resolved conflict waits for its reconcile).
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SyncJournal(Base):
    """What a reconcile read, decided and wrote, and the API calls it made. Append-only."""

    __tablename__ = "sync_journal"
    __table_args__ = (
        Index("ix_sync_journal_link", "link_id", "id"),
        Index("ix_sync_journal_connection", "connection_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    link_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sync_links.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(30))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    trigger: Mapped[str] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(30))  # noop | push | pull | push+pull | create_remote | ...
    summary: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)


class SyncStream(Base):
    """Per connection and entity: the poll cursor and the full reconcile's progress."""

    __tablename__ = "sync_streams"

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(String(30), primary_key=True)
    poll_cursor: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_poll_error: Mapped[str | None] = mapped_column(Text)
    last_poll_changes: Mapped[int] = mapped_column(default=0)
    full_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    full_page: Mapped[str | None] = mapped_column(Text)  # the next page URL of a pass in progress
    last_full_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    backfill: Mapped[dict[str, Any] | None] = mapped_column(PortableJSON)


class SyncRemoteWebhook(IdMixin, TimestampMixin, Base):
    """A webhook we created in the remote system, and the key in its URL."""

    __tablename__ = "sync_remote_webhooks"
    __table_args__ = (UniqueConstraint("connection_id", "model"),)

    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(30))  # contact | matter
    url_token: Mapped[str] = mapped_column(String(64), unique=True)
    remote_id: Mapped[int | None] = mapped_column(BigInteger)
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="creating")  # creating|pending|enabled|...
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_delivery_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deliveries: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class SyncInboxEntry(Base):
    """A webhook delivery, kept once per (connection, digest of the body) so duplicates are dropped."""

    __tablename__ = "sync_inbox"
    __table_args__ = (
        UniqueConstraint("connection_id", "digest"),
        Index("ix_sync_inbox_received_at", "received_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(30))
    event: Mapped[str] = mapped_column(String(30))
    remote_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SyncRateBudget(Base):
    """The remote API's rate-limit budget for a connection's token, shared by every worker process."""

    __tablename__ = "sync_rate_budgets"

    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    limit: Mapped[int] = mapped_column(default=50)
    remaining: Mapped[int] = mapped_column(default=50)
    reset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Requests sent and not yet answered; they may land in the next window.
    in_flight: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by interactive work that found no permit: bulk work stands back until then.
    interactive_waiting_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    granted: Mapped[int] = mapped_column(BigInteger, default=0)
    limited: Mapped[int] = mapped_column(BigInteger, default=0)  # 429s received

"""Documents filed on a matter, each with an append-only list of versions whose bytes are blobs."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from casebridge.db.types import UTCDateTime, utcnow
from casebridge.models.base import Base, IdMixin, TimestampMixin, VersionedMixin


class Document(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_matter_folder", "matter_id", "folder_path"),)

    matter_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("matters.id"), index=True)
    folder_path: Mapped[str] = mapped_column(String(1000), default="")
    name: Mapped[str] = mapped_column(String(500))
    latest_version: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str | None] = mapped_column(String(200))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    versions: Mapped[list[DocumentVersion]] = relationship(
        cascade="all, delete-orphan", order_by="DocumentVersion.version_number", lazy="raise"
    )


class DocumentVersion(IdMixin, Base):
    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "version_number"),)

    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    version_number: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(500))
    uploaded_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

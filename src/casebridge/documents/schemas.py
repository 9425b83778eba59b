"""Request and response shapes for documents, and the rules for names and folder paths."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from casebridge.kit.etag import etag_for
from casebridge.kit.schemas import StrictModel
from casebridge.models import Document, DocumentVersion

NAME_MAX = 500
FOLDER_MAX = 1000
CONTENT_TYPE_MAX = 200
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def normalise_folder(raw: str) -> str:
    """``"/Pleadings/ Drafts/"`` → ``"Pleadings/Drafts"``; ``""`` is the matter's top level.

    Raises ValueError for ``.``/``..`` segments, empty segments (``a//b``), backslashes and control
    characters, so a folder path can never climb out of its matter or smuggle a second meaning.
    """
    value = raw.strip().strip("/")
    if not value:
        return ""
    segments = []
    for segment in value.split("/"):
        segment = segment.strip()
        if not segment:
            raise ValueError("folder_path has an empty segment ('//'); name every folder")
        if segment in (".", ".."):
            raise ValueError("folder_path may not contain '.' or '..' segments")
        if "\\" in segment or _CONTROL.search(segment):
            raise ValueError("folder_path may not contain backslashes or control characters")
        segments.append(segment)
    path = "/".join(segments)
    if len(path) > FOLDER_MAX:
        raise ValueError(f"folder_path is longer than {FOLDER_MAX} characters")
    return path


def check_name(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ValueError("name may not be empty")
    if len(value) > NAME_MAX:
        raise ValueError(f"name is longer than {NAME_MAX} characters")
    if "/" in value or "\\" in value or _CONTROL.search(value):
        raise ValueError("name may not contain slashes or control characters; use folder_path for folders")
    return value


def clean_filename(raw: str | None) -> str | None:
    """The last path component of a client's filename, without control characters; None if empty."""
    if raw is None:
        return None
    value = _CONTROL.sub("", raw).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return value[:NAME_MAX] or None


class DocumentUpdate(StrictModel):
    """Rename or move within the matter; only the fields sent change."""

    name: str | None = Field(default=None, max_length=NAME_MAX)
    folder_path: str | None = Field(default=None, description="`a/b/c`; empty for the top level.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("name may not be null")
        return check_name(value)

    @field_validator("folder_path")
    @classmethod
    def _folder(cls, value: str | None) -> str:
        if value is None:
            raise ValueError('folder_path may not be null; send "" for the matter\'s top level')
        return normalise_folder(value)


class VersionOut(BaseModel):
    number: int
    sha256: str = Field(description="Hex SHA-256 of the bytes; also the content's ETag.")
    size_bytes: int
    content_type: str
    filename: str
    uploaded_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, v: DocumentVersion) -> VersionOut:
        return cls(
            number=v.version_number,
            sha256=v.sha256,
            size_bytes=v.size_bytes,
            content_type=v.content_type,
            filename=v.filename,
            uploaded_by=v.uploaded_by,
            created_at=v.created_at,
        )


class VersionList(BaseModel):
    data: list[VersionOut]


class DocumentOut(BaseModel):
    id: uuid.UUID
    etag: str
    matter_id: uuid.UUID
    folder_path: str
    name: str
    latest_version: VersionOut
    version_count: int
    deleted_at: datetime | None = Field(description="Set while the document is in the trash.")
    created_at: datetime
    updated_at: datetime
    created_by: str | None

    @classmethod
    def of(cls, d: Document) -> DocumentOut:
        latest = next(v for v in reversed(d.versions) if v.version_number == d.latest_version)
        return cls(
            id=d.id,
            etag=etag_for(d.id, d.version),
            matter_id=d.matter_id,
            folder_path=d.folder_path,
            name=d.name,
            latest_version=VersionOut.of(latest),
            version_count=len(d.versions),
            deleted_at=d.deleted_at,
            created_at=d.created_at,
            updated_at=d.updated_at,
            created_by=d.created_by,
        )

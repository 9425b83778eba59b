"""Document rules: versions, rename and move, trash, restore and purge; retention and blob collection."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from casebridge.config import Settings
from casebridge.db.session import SessionFactory, unit_of_work
from casebridge.db.types import utcnow
from casebridge.documents import repository
from casebridge.documents.blobstore import BlobInfo, BlobStore
from casebridge.documents.schemas import DocumentOut, DocumentUpdate
from casebridge.events import diff, record_event
from casebridge.kit.context import Principal
from casebridge.kit.problems import conflict, field_error, not_found, validation
from casebridge.models import Document, DocumentVersion

log = logging.getLogger("casebridge.documents")

ENTITY = "document"
PURGE_BATCH = 200
# Unreferenced blobs younger than this are left alone by the periodic sweep (uploads in flight, and
# blobs left by a failed request are collected on a later run).
BLOB_GRACE = timedelta(hours=1)
TEMP_MAX_AGE = timedelta(hours=1)


@dataclass(frozen=True)
class NewContent:
    """A stored upload, ready to become a version."""

    blob: BlobInfo
    content_type: str
    filename: str


@dataclass(frozen=True)
class NewDocument:
    matter_id: uuid.UUID
    name: str
    folder_path: str
    source: str = "body"  # where matter_id came from, for error fields: "body" or "query"


def blob_store(settings: Settings) -> BlobStore:
    return BlobStore(settings.blob_dir, settings.tmp_dir)


def snapshot(document: Document) -> dict[str, Any]:
    return DocumentOut.of(document).model_dump(
        mode="json", exclude={"id", "etag", "created_at", "updated_at"}
    )


def get_or_404(session: Session, document_id: uuid.UUID, *, for_update: bool = False) -> Document:
    document = repository.get(session, document_id, for_update=for_update)
    if document is None:
        raise not_found("document", document_id)
    return document


def check_matter(session: Session, matter_id: uuid.UUID, source: str = "body") -> None:
    found, archived_at = repository.matter_archived_at(session, matter_id)
    if not found:
        raise validation(
            [field_error(f"{source}.matter_id", f"no matter with id {matter_id}", "unknown_matter")]
        )
    if archived_at is not None:
        raise validation(
            [
                field_error(
                    f"{source}.matter_id",
                    f"matter {matter_id} is archived; restore it before filing documents on it",
                    "archived_matter",
                )
            ]
        )


def ensure_writable(document: Document) -> None:
    if document.deleted_at is not None:
        raise conflict(
            "This document is in the trash; restore it (POST .../restore) before changing it.", "in-trash"
        )


def _version(principal: Principal, number: int, content: NewContent, now: datetime) -> DocumentVersion:
    return DocumentVersion(
        version_number=number,
        sha256=content.blob.sha256,
        size_bytes=content.blob.size,
        content_type=content.content_type,
        filename=content.filename,
        uploaded_by=principal.label,
        created_at=now,
    )


def create(
    session: Session, store: BlobStore, principal: Principal, new: NewDocument, content: NewContent
) -> Document:
    check_matter(session, new.matter_id, new.source)
    store.claim(session, content.blob.sha256)
    now = utcnow()
    document = Document(
        matter_id=new.matter_id,
        folder_path=new.folder_path,
        name=new.name,
        latest_version=1,
        created_by=principal.label,
        created_at=now,
        updated_at=now,
        versions=[_version(principal, 1, content, now)],
    )
    session.add(document)
    session.flush()
    record_event(session, "document.created", ENTITY, document.id, diff({}, snapshot(document)))
    return document


def add_version(
    session: Session, store: BlobStore, principal: Principal, document: Document, content: NewContent
) -> Document:
    """Append version N+1; ``document`` should be read ``for_update`` so concurrent uploads queue."""
    ensure_writable(document)
    store.claim(session, content.blob.sha256)
    before = snapshot(document)
    now = utcnow()
    number = document.latest_version + 1
    document.versions.append(_version(principal, number, content, now))
    document.latest_version = number
    document.updated_at = now
    session.flush()
    record_event(session, "document.version_added", ENTITY, document.id, diff(before, snapshot(document)))
    return document


def update(session: Session, document: Document, data: DocumentUpdate) -> Document:
    ensure_writable(document)
    before = snapshot(document)
    sent = data.model_fields_set
    if "name" in sent and data.name is not None:
        document.name = data.name
    if "folder_path" in sent and data.folder_path is not None:
        document.folder_path = data.folder_path
    changes = diff(before, snapshot(document))
    if changes:
        document.updated_at = utcnow()
        session.flush()
        record_event(session, "document.updated", ENTITY, document.id, changes)
    return document


def trash(session: Session, document: Document) -> Document:
    if document.deleted_at is None:
        before = snapshot(document)
        document.deleted_at = utcnow()
        session.flush()
        record_event(session, "document.deleted", ENTITY, document.id, diff(before, snapshot(document)))
    return document


def restore(session: Session, document: Document) -> Document:
    if document.deleted_at is not None:
        before = snapshot(document)
        document.deleted_at = None
        session.flush()
        record_event(session, "document.restored", ENTITY, document.id, diff(before, snapshot(document)))
    return document


def purge(session: Session, document: Document) -> set[str]:
    """Delete a trashed document and its versions; returns the blob hashes it referenced.

    The blobs themselves may only go once this transaction has committed: see
    :func:`remove_blobs_after_commit`.
    """
    if document.deleted_at is None:
        raise conflict(
            "Only a document in the trash can be purged; delete it first (DELETE /documents/{id}).",
            "not-in-trash",
        )
    shas = {v.sha256 for v in document.versions}
    record_event(session, "document.purged", ENTITY, document.id, diff(snapshot(document), {}))
    session.delete(document)
    session.flush()
    return shas


def collect_blobs(factory: SessionFactory, store: BlobStore, shas: Iterable[str]) -> int:
    """Remove those of ``shas`` no version refers to, in a writer transaction of their own."""
    wanted = list(shas)
    if not wanted:
        return 0
    with unit_of_work(factory) as session:
        return store.delete_unreferenced(session, None, candidates=wanted)


def remove_blobs_after_commit(
    session: Session, factory: SessionFactory, store: BlobStore, shas: Iterable[str]
) -> None:
    """Once ``session`` commits, remove those blobs nothing refers to any more (best effort)."""
    wanted = list(shas)

    def _after_commit(_session: Session) -> None:
        try:
            collect_blobs(factory, store, wanted)
        except Exception:  # the purge stands; the periodic purge collects what is left
            log.exception("could not remove purged blobs; `casebridge documents purge` will retry")

    event.listen(session, "after_commit", _after_commit, once=True)


def purge_expired(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Purge documents trashed longer than ``trash_retention_days``; returns how many were purged.

    Also removes blobs no version refers to (older than an hour, or freed by this purge) and stray
    upload temp files older than an hour. ``session`` must be a writer session (``Database.writer``).
    This function commits: purged rows are committed before any blob is removed, so a failure can
    leave an unreferenced blob (removed on the next run) but never a version without its bytes.
    """
    now = now or utcnow()
    store = blob_store(settings)
    cutoff = now - timedelta(days=settings.trash_retention_days)
    purged = 0
    freed: set[str] = set()
    while batch := repository.trashed_before(session, cutoff, PURGE_BATCH):
        for document in batch:
            freed |= purge(session, document)
            purged += 1
        session.commit()
    store.delete_unreferenced(session, None, candidates=freed)
    store.delete_unreferenced(session, now - BLOB_GRACE)
    session.commit()
    store.sweep_temp(now - TEMP_MAX_AGE)
    if purged:
        log.info("purged %d document(s) trashed before %s", purged, cutoff.isoformat())
    return purged

"""Archive and restore: one rule for every record that is archived rather than deleted."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from casebridge.db.types import utcnow
from casebridge.events import record_event


class Archivable(Protocol):
    id: uuid.UUID
    archived_at: datetime | None


def set_archived(session: Session, entity: Archivable, entity_type: str, archived: bool) -> None:
    """Archive (or restore) and raise ``<type>.archived`` / ``<type>.restored``; a no-op raises nothing."""
    if archived == (entity.archived_at is not None):
        return
    old = entity.archived_at.isoformat() if entity.archived_at else None
    entity.archived_at = utcnow() if archived else None
    session.flush()
    new = entity.archived_at.isoformat() if entity.archived_at else None
    action = "archived" if archived else "restored"
    record_event(
        session, f"{entity_type}.{action}", entity_type, entity.id, {"archived_at": {"old": old, "new": new}}
    )

"""Matter notes and alerts: what people and workflows leave on a matter.

Events: ``matter.note_added`` (entity: the matter; ``changes.note.new`` is the note), ``alert.raised``
and ``alert.acknowledged`` (entity: the alert).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from casebridge.alerts.schemas import AlertOut, NoteOut
from casebridge.db.types import utcnow
from casebridge.events import diff, record_event
from casebridge.kit.problems import conflict, not_found
from casebridge.models import Alert, Matter, MatterNote

ALERT = "alert"


def open_matter(session: Session, matter_id: uuid.UUID) -> Matter:
    matter = session.get(Matter, matter_id)
    if matter is None:
        raise not_found("matter", matter_id)
    if matter.archived_at is not None:
        raise conflict(
            f"Matter {matter.display_number} is archived: restore it before adding to its history.",
            "archived",
        )
    return matter


def add_note(session: Session, matter_id: uuid.UUID, body: str, author: str | None) -> MatterNote:
    open_matter(session, matter_id)
    note = MatterNote(matter_id=matter_id, body=body, author=author, created_at=utcnow())
    session.add(note)
    session.flush()
    shown = NoteOut.of(note).model_dump(mode="json", exclude={"matter_id"})
    record_event(session, "matter.note_added", "matter", matter_id, {"note": {"old": None, "new": shown}})
    return note


def get_alert_or_404(session: Session, alert_id: uuid.UUID) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise not_found("alert", alert_id)
    return alert


def _snapshot(alert: Alert) -> dict[str, Any]:
    return AlertOut.of(alert).model_dump(mode="json", exclude={"id", "created_at"})


def raise_alert(
    session: Session,
    *,
    matter_id: uuid.UUID | None,
    entity_type: str | None,
    entity_id: str | None,
    severity: str,
    message: str,
    source: str | None,
) -> Alert:
    if matter_id is not None and session.get(Matter, matter_id) is None:
        raise not_found("matter", matter_id)
    alert = Alert(
        matter_id=matter_id,
        entity_type=entity_type,
        entity_id=entity_id,
        severity=severity,
        message=message,
        source=source,
        created_at=utcnow(),
    )
    session.add(alert)
    session.flush()
    record_event(session, "alert.raised", ALERT, alert.id, diff({}, _snapshot(alert)))
    return alert


def acknowledge(session: Session, alert: Alert) -> Alert:
    """Idempotent: acknowledging an acknowledged alert changes nothing and raises no event."""
    if alert.acknowledged_at is not None:
        return alert
    before = _snapshot(alert)
    alert.acknowledged_at = utcnow()
    session.flush()
    record_event(session, "alert.acknowledged", ALERT, alert.id, diff(before, _snapshot(alert)))
    return alert

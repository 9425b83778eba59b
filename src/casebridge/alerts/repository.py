"""All SQL for matter notes and alerts."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select

from casebridge.models import Alert, MatterNote

NOTE_ORDER = {"created_at": MatterNote.created_at}
ALERT_ORDER = {"created_at": Alert.created_at}


def notes_query(matter_id: uuid.UUID) -> Select[MatterNote]:
    return select(MatterNote).where(MatterNote.matter_id == matter_id)


def alerts_query(
    *, matter_id: uuid.UUID | None = None, acknowledged: bool | None = None, severity: str | None = None
) -> Select[Alert]:
    stmt = select(Alert)
    if matter_id is not None:
        stmt = stmt.where(Alert.matter_id == matter_id)
    if acknowledged is True:
        stmt = stmt.where(Alert.acknowledged_at.is_not(None))
    elif acknowledged is False:
        stmt = stmt.where(Alert.acknowledged_at.is_(None))
    if severity is not None:
        stmt = stmt.where(Alert.severity == severity)
    return stmt

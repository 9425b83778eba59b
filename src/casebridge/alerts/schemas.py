"""Request and response shapes for matter notes and alerts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from casebridge.kit.schemas import StrictModel
from casebridge.models import Alert, MatterNote

Severity = Literal["info", "warning", "critical"]
NoteBody = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]


class NoteIn(StrictModel):
    body: NoteBody = Field(examples=["Called the client: completion moved to Friday."])


class NoteOut(BaseModel):
    id: uuid.UUID
    matter_id: uuid.UUID
    body: str
    author: str | None = Field(description="The API token's name, or `workflow:<name>` for a workflow.")
    created_at: datetime

    @classmethod
    def of(cls, n: MatterNote) -> NoteOut:
        return cls(id=n.id, matter_id=n.matter_id, body=n.body, author=n.author, created_at=n.created_at)


class AlertOut(BaseModel):
    id: uuid.UUID
    matter_id: uuid.UUID | None
    entity_type: str | None = Field(description="The record the alert is about (for example activity).")
    entity_id: str | None
    severity: str = Field(examples=["warning"])
    message: str
    source: str | None = Field(description="Who raised it, for example `workflow:fee-estimate-watch`.")
    acknowledged: bool
    acknowledged_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, a: Alert) -> AlertOut:
        return cls(
            id=a.id,
            matter_id=a.matter_id,
            entity_type=a.entity_type,
            entity_id=a.entity_id,
            severity=a.severity,
            message=a.message,
            source=a.source,
            acknowledged=a.acknowledged_at is not None,
            acknowledged_at=a.acknowledged_at,
            created_at=a.created_at,
        )

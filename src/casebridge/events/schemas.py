"""The public shape of a business event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from casebridge.models import Event


class EventActor(BaseModel):
    id: str | None = Field(description="The API token id that made the change; null for the system.")
    name: str | None
    role: str | None


class EventOut(BaseModel):
    id: int = Field(description="Monotonic in commit order; page with `after`.")
    type: str = Field(examples=["matter.status_changed"])
    entity_type: str
    entity_id: str
    occurred_at: datetime
    actor: EventActor
    changes: dict[str, Any] = Field(description="Changed fields as {field: {old, new}}.")
    request_id: str | None

    @classmethod
    def of(cls, row: Event) -> EventOut:
        return cls(
            id=row.id,
            type=row.type,
            entity_type=row.entity_type,
            entity_id=row.entity_id,
            occurred_at=row.occurred_at,
            actor=EventActor(id=row.actor_id, name=row.actor_name, role=row.actor_role),
            changes=row.changes,
            request_id=row.request_id,
        )


class EventPage(BaseModel):
    data: list[EventOut]
    next_after: int | None = Field(description="Pass as `after` to read the next page; null at the end.")

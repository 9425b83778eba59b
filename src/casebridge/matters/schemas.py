"""Request and response shapes for matters and the numbering setting."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from casebridge.kit.etag import etag_for
from casebridge.kit.schemas import Money, MoneyOut, StrictModel
from casebridge.models import Matter

MatterStatus = Literal["open", "pending", "closed"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
PracticeArea = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
DisplayNumber = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Role = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class ParticipantIn(StrictModel):
    contact_id: uuid.UUID
    role: Role = Field(examples=["other side", "buyer's solicitor", "executor"])


class MatterFields(StrictModel):
    description: Annotated[str, StringConstraints(max_length=20000)] | None = None
    practice_area: PracticeArea | None = None
    responsible_user_id: uuid.UUID | None = None
    fee_estimate: Money | None = None
    participants: list[ParticipantIn] | None = Field(default=None, max_length=100)
    open_date: date | None = Field(default=None, description="Defaults to today when the matter opens.")
    pending_date: date | None = None
    close_date: date | None = None
    display_number: DisplayNumber | None = Field(
        default=None,
        description="Integration or admin only: take the number another system (the PMS) assigned.",
    )


class MatterCreate(MatterFields):
    title: Title
    client_id: uuid.UUID
    status: MatterStatus = "open"


class MatterUpdate(MatterFields):
    """Only the fields sent change; `participants`, when sent, replaces the list."""

    title: Title | None = None
    client_id: uuid.UUID | None = None
    status: MatterStatus | None = None


class ParticipantOut(BaseModel):
    id: uuid.UUID
    contact_id: uuid.UUID
    role: str


class MatterOut(BaseModel):
    id: uuid.UUID
    etag: str
    number: int = Field(description="Firm-wide sequential number.")
    display_number: str = Field(examples=["00042-Smith"])
    title: str
    description: str | None
    status: str
    open_date: date | None
    pending_date: date | None
    close_date: date | None
    practice_area: str | None
    responsible_user_id: uuid.UUID | None
    client_id: uuid.UUID
    participants: list[ParticipantOut]
    fee_estimate: MoneyOut | None
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, m: Matter) -> MatterOut:
        fee = None
        if m.fee_estimate_amount is not None and m.fee_estimate_currency:
            fee = MoneyOut.of(m.fee_estimate_amount, m.fee_estimate_currency)
        return cls(
            id=m.id,
            etag=etag_for(m.id, m.version),
            number=m.number,
            display_number=m.display_number,
            title=m.title,
            description=m.description,
            status=m.status,
            open_date=m.open_date,
            pending_date=m.pending_date,
            close_date=m.close_date,
            practice_area=m.practice_area,
            responsible_user_id=m.responsible_user_id,
            client_id=m.client_id,
            participants=[
                ParticipantOut(id=p.id, contact_id=p.contact_id, role=p.role) for p in m.participants
            ],
            fee_estimate=fee,
            archived_at=m.archived_at,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )


class NumberingIn(StrictModel):
    scheme: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        examples=["{number:05d}-{client_last_name}"]
    )


class NumberingOut(BaseModel):
    scheme: str
    fields: dict[str, str] = Field(description="The fields a scheme may use.")
    next_number: int
    example: str = Field(description="The scheme applied to a sample matter.")

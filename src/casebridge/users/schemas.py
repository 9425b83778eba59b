"""Request and response shapes for the firm's people."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, StringConstraints, field_validator

from casebridge.kit.etag import etag_for
from casebridge.kit.schemas import Name, StrictModel
from casebridge.models import User

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Initials = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10)]


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL.match(value):
        raise ValueError(f"'{value}' is not an email address")
    return value.lower() if value else value


class UserCreate(StrictModel):
    name: Name
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)]
    initials: Initials | None = None
    active: bool = True

    _check_email = field_validator("email")(_email)


class UserUpdate(StrictModel):
    name: Name | None = None
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=320)] | None = None
    initials: Initials | None = None
    active: bool | None = None

    _check_email = field_validator("email")(_email)


class UserOut(BaseModel):
    id: uuid.UUID
    etag: str
    name: str
    email: str
    initials: str | None
    active: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            id=u.id,
            etag=etag_for(u.id, u.version),
            name=u.name,
            email=u.email,
            initials=u.initials,
            active=u.active,
            created_at=u.created_at,
            updated_at=u.updated_at,
        )

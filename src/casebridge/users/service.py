"""User rules: unique email; users are deactivated, never deleted (matters and time name them)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from casebridge.db.types import utcnow
from casebridge.events import diff, record_event
from casebridge.kit.problems import field_error, not_found, validation
from casebridge.models import User
from casebridge.users import repository
from casebridge.users.schemas import UserCreate, UserOut, UserUpdate

ENTITY = "user"


def snapshot(user: User) -> dict[str, Any]:
    return UserOut.of(user).model_dump(mode="json", exclude={"id", "etag", "created_at", "updated_at"})


def get_or_404(session: Session, user_id: uuid.UUID) -> User:
    user = repository.get(session, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


def require_active(session: Session, user_id: uuid.UUID, field: str) -> User:
    """For references from other records: 422 naming the field when the user is unknown or inactive."""
    user = repository.get(session, user_id)
    if user is None:
        raise validation([field_error(field, f"no user with id {user_id}", "unknown_user")])
    if not user.active:
        raise validation([field_error(field, f"user {user.name} is inactive", "inactive_user")])
    return user


def _unique_email(session: Session, email: str, other_than: uuid.UUID | None = None) -> None:
    if repository.email_taken(session, email, other_than=other_than):
        raise validation(
            [field_error("body.email", f"another user already has the email {email}", "duplicate")]
        )


def create(session: Session, data: UserCreate) -> User:
    _unique_email(session, data.email)
    user = User(**data.model_dump())
    session.add(user)
    session.flush()
    record_event(session, "user.created", ENTITY, user.id, diff({}, snapshot(user)))
    return user


def update(session: Session, user: User, data: UserUpdate) -> User:
    before = snapshot(user)
    if data.email is not None:
        _unique_email(session, data.email, user.id)
    for name in data.model_fields_set:
        value = getattr(data, name)
        if value is None and name in ("name", "email", "active"):
            raise validation([field_error(f"body.{name}", f"{name} cannot be null", "null")])
        setattr(user, name, value)
    changes = diff(before, snapshot(user))
    if changes:
        user.updated_at = utcnow()
        session.flush()
        record_event(session, "user.updated", ENTITY, user.id, changes)
    return user

"""Token creation, lookup and revocation."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casebridge.db.types import utcnow
from casebridge.kit.context import Principal, Role
from casebridge.models import ApiToken

TOKEN_PREFIX = "cb_"
_LAST_USED_GRANULARITY = timedelta(minutes=5)


def hash_token(secret: str) -> str:
    # Tokens carry 256 bits of randomness, so a fast hash is enough (no password stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


def create_token(session: Session, *, name: str, role: Role, user_id: uuid.UUID | None = None) -> IssuedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name, role=role.value, token_hash=hash_token(secret), prefix=secret[:10], user_id=user_id
    )
    session.add(row)
    session.flush()
    return IssuedToken(row, secret)


def list_tokens(session: Session, *, include_revoked: bool = False) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.created_at)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(stmt))


def find_token(session: Session, ref: str) -> ApiToken | None:
    """A token by id, by unique name, or by its displayed prefix."""
    try:
        by_id = session.get(ApiToken, uuid.UUID(ref))
        if by_id is not None:
            return by_id
    except ValueError:
        pass
    rows = list(
        session.scalars(select(ApiToken).where((ApiToken.name == ref) | (ApiToken.prefix == ref)).limit(2))
    )
    return rows[0] if len(rows) == 1 else None


def revoke_token(session: Session, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    # True when last_used_at is older than its granularity and should be touched (by a writer).
    stale_last_used: bool


def authenticate(session: Session, secret: str) -> Authenticated | None:
    """Look a token up (a read: no write lock is taken for the ordinary request)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    if row is None or row.revoked_at is not None:
        return None
    stale = row.last_used_at is None or utcnow() - row.last_used_at > _LAST_USED_GRANULARITY
    principal = Principal(token_id=row.id, name=row.name, role=Role(row.role), user_id=row.user_id)
    return Authenticated(principal, stale)


def touch(session: Session, token_id: uuid.UUID) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))

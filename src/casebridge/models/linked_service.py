"""Named external endpoints (a finance system, a PMS) with their auth, used by workflows and widgets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from casebridge.db.types import PortableJSON
from casebridge.models.base import Base, IdMixin, TimestampMixin, VersionedMixin


class LinkedService(IdMixin, TimestampMixin, VersionedMixin, Base):
    __tablename__ = "linked_services"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(String(500))
    base_url: Mapped[str] = mapped_column(String(2000))
    # none | api_key | basic | oauth2_client_credentials
    auth_type: Mapped[str] = mapped_column(String(30), default="none")
    # Non-secret auth settings: header_name, username, token_url, client_id, scope.
    auth_config: Mapped[dict[str, Any]] = mapped_column(PortableJSON, default=dict)
    # The API key, password or client secret, encrypted with CASEBRIDGE_SECRET_KEY.
    secret_encrypted: Mapped[str | None] = mapped_column(Text)
    timeout_seconds: Mapped[float] = mapped_column(default=10.0)

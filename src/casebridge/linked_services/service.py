"""Linked service rules: unique names, write-only secrets encrypted at rest, and no silent breakage of
the workflows that use a service.

Events (``linked_service.created`` / ``.updated`` / ``.deleted``) carry the public representation:
``has_secret`` and, when the secret was replaced, ``secret: {"old": "[redacted]", "new": "[redacted]"}``;
never the secret itself.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from casebridge.db.types import utcnow
from casebridge.events import diff, record_event
from casebridge.kit.crypto import SecretBox
from casebridge.kit.problems import Problem, conflict, field_error, validation
from casebridge.linked_services import repository
from casebridge.linked_services.client import (
    REDACTED,
    LinkedServiceClient,
    LinkedServiceError,
    ServiceConfig,
)
from casebridge.linked_services.schemas import (
    NEEDS_SECRET,
    ConnectionTestIn,
    ConnectionTestOut,
    LinkedServiceCreate,
    LinkedServiceOut,
    LinkedServiceUpdate,
    NoAuth,
)
from casebridge.models import LinkedService
from casebridge.workflows import repository as workflows

ENTITY = "linked_service"


def snapshot(row: LinkedService) -> dict[str, Any]:
    return LinkedServiceOut.of(row).model_dump(
        mode="json", exclude={"id", "etag", "created_at", "updated_at"}
    )


def get_or_404(session: Session, name: str) -> LinkedService:
    row = repository.by_name(session, name)
    if row is None:
        raise Problem(404, f"No linked service named '{name}'.")
    return row


def _unique_name(session: Session, name: str, other_than: LinkedService | None = None) -> None:
    found = repository.by_name(session, name)
    if found is not None and found is not other_than:
        raise conflict(f"A linked service named '{name}' already exists.")


def _auth_config(auth: Any) -> tuple[str, dict[str, Any]]:
    data = auth.model_dump(mode="json", exclude_none=True)
    kind = str(data.pop("type"))
    return kind, data


def _require_secret(row: LinkedService) -> None:
    if row.auth_type in NEEDS_SECRET and row.secret_encrypted is None:
        what = {
            "api_key": "the API key",
            "basic": "the password",
            "oauth2_client_credentials": "the client secret",
        }
        raise validation(
            [
                field_error(
                    "body.secret",
                    f"{row.auth_type} auth needs a secret: send {what[row.auth_type]} as 'secret'",
                    "missing",
                )
            ]
        )


def _users(session: Session, name: str) -> list[str]:
    return workflows.names_using_service(session, name)


def create(session: Session, box: SecretBox, data: LinkedServiceCreate) -> LinkedService:
    _unique_name(session, data.name)
    kind, config = _auth_config(data.auth)
    row = LinkedService(
        name=data.name,
        description=data.description,
        base_url=data.base_url,
        auth_type=kind,
        auth_config=config,
        secret_encrypted=box.encrypt(data.secret.get_secret_value()) if data.secret else None,
        timeout_seconds=data.timeout_seconds,
    )
    if kind == "none" and data.secret is not None:
        raise validation(
            [field_error("body.secret", "a service with auth type none takes no secret", "not_applicable")]
        )
    _require_secret(row)
    session.add(row)
    session.flush()
    changes = diff({}, snapshot(row))
    record_event(session, f"{ENTITY}.created", ENTITY, row.id, changes)
    return row


def update(session: Session, box: SecretBox, row: LinkedService, data: LinkedServiceUpdate) -> LinkedService:
    sent = data.model_fields_set
    for name in ("name", "base_url", "timeout_seconds"):
        if name in sent and getattr(data, name) is None:
            raise validation([field_error(f"body.{name}", f"{name} cannot be null", "null")])
    before = snapshot(row)
    if data.name is not None and data.name != row.name:
        users = _users(session, row.name)
        if users:
            raise conflict(
                f"Linked service '{row.name}' is used by the workflows {', '.join(users)}; change them to "
                "another service before renaming it."
            )
        _unique_name(session, data.name, row)
        row.name = data.name
    if "description" in sent:
        row.description = data.description
    if data.base_url is not None:
        row.base_url = data.base_url
    if data.timeout_seconds is not None:
        row.timeout_seconds = data.timeout_seconds
    if "auth" in sent:
        kind, config = _auth_config(data.auth or NoAuth())
        if kind != row.auth_type and kind in NEEDS_SECRET and "secret" not in sent:
            raise validation(
                [
                    field_error(
                        "body.secret",
                        f"changing auth from {row.auth_type} to {kind} needs the new secret in 'secret'",
                        "missing",
                    )
                ]
            )
        row.auth_type, row.auth_config = kind, config
    secret_changed = False
    if "secret" in sent:
        old = row.secret_encrypted
        row.secret_encrypted = box.encrypt(data.secret.get_secret_value()) if data.secret else None
        secret_changed = old is not None or row.secret_encrypted is not None
        if row.auth_type == "none" and row.secret_encrypted is not None:
            raise validation(
                [
                    field_error(
                        "body.secret", "a service with auth type none takes no secret", "not_applicable"
                    )
                ]
            )
    _require_secret(row)
    changes = diff(before, snapshot(row))
    if secret_changed:
        changes["secret"] = {
            "old": REDACTED if before["has_secret"] else None,
            "new": REDACTED if row.secret_encrypted else None,
        }
    if changes:
        row.updated_at = utcnow()
        session.flush()
        record_event(session, f"{ENTITY}.updated", ENTITY, row.id, changes)
    return row


def delete(session: Session, row: LinkedService) -> None:
    users = _users(session, row.name)
    if users:
        raise conflict(
            f"Linked service '{row.name}' is used by the workflows {', '.join(users)}; change or delete them "
            "first."
        )
    before = snapshot(row)
    row_id = row.id
    session.delete(row)
    session.flush()
    record_event(session, f"{ENTITY}.deleted", ENTITY, row_id, diff(before, {}))


def config(row: LinkedService, box: SecretBox) -> ServiceConfig:
    return ServiceConfig.of(row, box)


def check_connection(cfg: ServiceConfig, data: ConnectionTestIn) -> ConnectionTestOut:
    """One request with the service's auth. Call it with no database transaction open: the service may
    well call this API back while it answers."""
    client = LinkedServiceClient(cfg)
    started = time.monotonic()
    try:
        response = client.request(data.method, data.path)
    except LinkedServiceError as exc:
        elapsed = int((time.monotonic() - started) * 1000)
        return ConnectionTestOut(ok=False, status=exc.status, elapsed_ms=elapsed, error=exc.message)
    elapsed = int((time.monotonic() - started) * 1000)
    ok = 200 <= response.status < 400
    error = None if ok else client.redact(f"{data.method} {data.path} answered {response.status}")
    return ConnectionTestOut(ok=ok, status=response.status, elapsed_ms=elapsed, error=error)

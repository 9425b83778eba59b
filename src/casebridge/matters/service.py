"""Matter rules: numbering, status dates, client and participants, integration-owned numbers."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from casebridge.contacts import repository as contacts
from casebridge.contacts.schemas import display_name
from casebridge.db.types import utcnow
from casebridge.events import diff, record_event
from casebridge.kit.archive import set_archived
from casebridge.kit.context import Principal, Role
from casebridge.kit.problems import Problem, conflict, field_error, not_found, validation
from casebridge.matters import numbering, repository
from casebridge.matters.schemas import MatterCreate, MatterFields, MatterOut, MatterUpdate, ParticipantIn
from casebridge.models import Contact, Matter, MatterParticipant
from casebridge.users.service import require_active

ENTITY = "matter"
NUMBER_OWNERS = (Role.INTEGRATION, Role.ADMIN)
_STATUS_FIELDS = ("status", "open_date", "pending_date", "close_date")


def snapshot(matter: Matter) -> dict[str, Any]:
    return MatterOut.of(matter).model_dump(mode="json", exclude={"id", "etag", "created_at", "updated_at"})


def get_or_404(session: Session, matter_id: uuid.UUID) -> Matter:
    matter = repository.get(session, matter_id)
    if matter is None:
        raise not_found("matter", matter_id)
    return matter


def _client(session: Session, client_id: uuid.UUID) -> Contact:
    contact = contacts.get(session, client_id)
    if contact is None:
        raise validation(
            [field_error("body.client_id", f"no contact with id {client_id}", "unknown_contact")]
        )
    if contact.archived_at is not None:
        raise validation(
            [
                field_error(
                    "body.client_id", f"contact {display_name(contact)} is archived", "archived_contact"
                )
            ]
        )
    return contact


def _participants(
    session: Session, items: list[ParticipantIn], existing: list[MatterParticipant]
) -> list[MatterParticipant]:
    seen: set[tuple[uuid.UUID, str]] = set()
    have = {(p.contact_id, p.role): p for p in existing}
    rows = []
    for pos, item in enumerate(items):
        key = (item.contact_id, item.role)
        if key in seen:
            raise validation(
                [
                    field_error(
                        f"body.participants.{pos}",
                        "the same contact appears twice in the same role",
                        "duplicate",
                    )
                ]
            )
        seen.add(key)
        if not contacts.exists_active(session, item.contact_id):
            raise validation(
                [
                    field_error(
                        f"body.participants.{pos}.contact_id", f"no active contact with id {item.contact_id}"
                    )
                ]
            )
        row = have.get(key) or MatterParticipant(contact_id=item.contact_id, role=item.role)
        row.position = pos
        rows.append(row)
    return rows


def _guard_display_number(principal: Principal, fields: MatterFields) -> None:
    if "display_number" in fields.model_fields_set and principal.role not in NUMBER_OWNERS:
        raise Problem(
            403,
            "Only an integration or an admin can set display_number: it is assigned by the firm's numbering "
            "scheme, or taken from the practice-management system that owns numbering.",
            slug="numbering-owned",
        )


def _unique_display_number(session: Session, value: str, other_than: uuid.UUID | None = None) -> None:
    if repository.display_number_taken(session, value, other_than):
        raise conflict(
            f"Another matter already has the display number {value!r}.", "duplicate-display-number"
        )


def _apply_status(matter: Matter, fields: MatterFields, new_status: str | None, today: date) -> None:
    sent = fields.model_fields_set
    for name in ("open_date", "pending_date", "close_date"):
        if name in sent:
            setattr(matter, name, getattr(fields, name))
    if new_status is not None and new_status != matter.status:
        previous = matter.status
        matter.status = new_status
        if new_status in ("open", "pending") and matter.open_date is None:
            matter.open_date = today
        if new_status == "pending" and "pending_date" not in sent:
            matter.pending_date = today
        if new_status == "closed" and "close_date" not in sent:
            matter.close_date = today
        if previous == "closed" and new_status != "closed" and "close_date" not in sent:
            matter.close_date = None  # reopened
    if matter.status in ("open", "pending") and matter.open_date is None:
        matter.open_date = today
    if matter.close_date and matter.open_date and matter.close_date < matter.open_date:
        raise validation([field_error("body.close_date", "close_date is before open_date", "date_order")])
    if matter.status != "closed" and "close_date" in sent and matter.close_date is not None:
        raise validation([field_error("body.close_date", "only a closed matter has a close_date", "status")])


def _apply_common(session: Session, matter: Matter, fields: MatterFields) -> None:
    sent = fields.model_fields_set
    for name in ("description", "practice_area"):
        if name in sent:
            setattr(matter, name, getattr(fields, name))
    if "responsible_user_id" in sent:
        if fields.responsible_user_id is not None:
            require_active(session, fields.responsible_user_id, "body.responsible_user_id")
        matter.responsible_user_id = fields.responsible_user_id
    if "fee_estimate" in sent:
        fee = fields.fee_estimate
        matter.fee_estimate_amount = fee.amount if fee else None
        matter.fee_estimate_currency = fee.currency if fee else None
    if "participants" in sent:
        matter.participants = _participants(session, fields.participants or [], list(matter.participants))


PROVISIONAL_PREFIX = "PENDING-"


def create(
    session: Session, principal: Principal, data: MatterCreate, *, numbered_elsewhere: bool = False
) -> Matter:
    """``numbered_elsewhere``: a connected system (Clio) assigns the display number; until it does the
    matter shows ``PENDING-<number>``, which can never collide with a number that system gives."""
    _guard_display_number(principal, data)
    client = _client(session, data.client_id)
    today = utcnow().date()
    matter = Matter(title=data.title, client_id=client.id, status=data.status, participants=[])
    _apply_common(session, matter, data)
    _apply_status(matter, data, None, today)
    if data.status == "pending" and matter.pending_date is None:
        matter.pending_date = today
    if data.status == "closed" and matter.close_date is None:
        matter.close_date = today
    matter.number = numbering.next_number(session)
    if data.display_number is not None:
        matter.display_number = data.display_number
    elif numbered_elsewhere:
        matter.display_number = f"{PROVISIONAL_PREFIX}{matter.number:05d}"
    else:
        scheme = numbering.get_settings(session).scheme
        last = client.last_name or client.company_name or display_name(client)
        values = numbering.display_values(
            matter.number, last, display_name(client), matter.practice_area, matter.open_date or today
        )
        matter.display_number = numbering.render(scheme, values)
    _unique_display_number(session, matter.display_number)
    session.add(matter)
    session.flush()
    record_event(session, "matter.created", ENTITY, matter.id, diff({}, snapshot(matter)))
    return matter


def update(session: Session, principal: Principal, matter: Matter, data: MatterUpdate) -> Matter:
    _guard_display_number(principal, data)
    if matter.archived_at is not None:
        raise conflict("This matter is archived; restore it before changing it.", "archived")
    sent = data.model_fields_set
    for name in ("title", "client_id", "status"):
        if name in sent and getattr(data, name) is None:
            raise validation([field_error(f"body.{name}", f"{name} cannot be null", "null")])
    before = snapshot(matter)
    if data.title is not None:
        matter.title = data.title
    if data.client_id is not None and data.client_id != matter.client_id:
        matter.client_id = _client(session, data.client_id).id
    if data.display_number is not None and data.display_number != matter.display_number:
        _unique_display_number(session, data.display_number, matter.id)
        matter.display_number = data.display_number
    _apply_common(session, matter, data)
    _apply_status(matter, data, data.status, utcnow().date())
    after = snapshot(matter)
    changes = diff(before, after)
    if not changes:
        return matter
    matter.updated_at = utcnow()
    session.flush()
    status_changes = {k: v for k, v in changes.items() if k in _STATUS_FIELDS}
    other_changes = {k: v for k, v in changes.items() if k not in _STATUS_FIELDS}
    if "status" in status_changes:
        record_event(session, "matter.status_changed", ENTITY, matter.id, status_changes)
    else:
        other_changes.update(status_changes)
    if other_changes:
        record_event(session, "matter.updated", ENTITY, matter.id, other_changes)
    return matter


def archive(session: Session, matter: Matter) -> Matter:
    set_archived(session, matter, ENTITY, True)
    return matter


def restore(session: Session, matter: Matter) -> Matter:
    set_archived(session, matter, ENTITY, False)
    return matter


def set_numbering(session: Session, scheme: str) -> numbering.NumberingSettings:
    try:
        numbering.validate_scheme(scheme)
    except numbering.SchemeError as exc:
        raise validation([field_error("body.scheme", str(exc), "invalid_scheme")]) from None
    before, after = numbering.set_settings(session, scheme)
    if before != after:
        record_event(
            session,
            "settings.updated",
            "setting",
            numbering.SETTING_KEY,
            {"scheme": {"old": before.scheme, "new": after.scheme}},
        )
    return after

"""Contact rules: names by kind, one primary per list, mastered records, archive and restore."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from casebridge.contacts import repository
from casebridge.contacts.schemas import (
    AddressIn,
    ContactCreate,
    ContactFields,
    ContactOut,
    ContactUpdate,
    EmailIn,
    PhoneIn,
)
from casebridge.db.types import utcnow
from casebridge.events import diff, record_event
from casebridge.kit.archive import set_archived
from casebridge.kit.context import Principal, Role
from casebridge.kit.problems import Problem, conflict, field_error, not_found, validation
from casebridge.models import Contact, ContactAddress, ContactEmail, ContactPartyType, ContactPhone

ENTITY = "contact"
_CHILD_FIELDS = ("emails", "phones", "addresses", "party_types")
_SCALAR_FIELDS = (
    "title",
    "first_name",
    "middle_name",
    "last_name",
    "company_name",
    "notes",
    "mastered_by",
    "external_ref",
)


def snapshot(contact: Contact) -> dict[str, Any]:
    data = ContactOut.of(contact).model_dump(mode="json")
    for volatile in ("etag", "created_at", "updated_at", "id"):
        data.pop(volatile)
    return data


def get_or_404(session: Session, contact_id: uuid.UUID) -> Contact:
    contact = repository.get(session, contact_id)
    if contact is None:
        raise not_found("contact", contact_id)
    return contact


def _guard_mastered(principal: Principal, mastered_by: str | None, action: str) -> None:
    if mastered_by and principal.role is not Role.INTEGRATION:
        raise Problem(
            403,
            f"This contact is mastered in '{mastered_by}': only an integration can {action} it. "
            f"Make the change in {mastered_by}; it will arrive here through the integration.",
            slug="mastered-elsewhere",
        )


def _check_names(contact: Contact) -> None:
    if contact.kind == "company" and not contact.company_name:
        raise validation([field_error("body.company_name", "a company needs a company_name", "missing")])
    if contact.kind == "person" and not (contact.first_name or contact.last_name):
        raise validation(
            [field_error("body.last_name", "a person needs a first_name or a last_name", "missing")]
        )


T = TypeVar("T", EmailIn, PhoneIn, AddressIn)


def _check_primary(name: str, items: Sequence[T]) -> None:
    if sum(1 for i in items if i.primary) > 1:
        raise validation(
            [field_error(f"body.{name}", f"at most one of the {name} can be primary", "primary")]
        )


def _primary_flags(items: Sequence[T]) -> list[bool]:
    """Exactly one primary in a non-empty list: the one marked, else the first."""
    if not items:
        return []
    if any(i.primary for i in items):
        return [i.primary for i in items]
    return [idx == 0 for idx in range(len(items))]


def _merge_children(existing: Sequence[Any], items: Sequence[T], name: str) -> dict[uuid.UUID, Any]:
    by_id = {row.id: row for row in existing}
    for item in items:
        if item.id is not None and item.id not in by_id:
            raise validation(
                [
                    field_error(
                        f"body.{name}", f"item id {item.id} is not one of this contact's {name}", "unknown_id"
                    )
                ]
            )
    return by_id


# Per nested list: the row class and the item fields copied onto it (``primary`` maps to ``is_primary``).
_CHILD_LISTS: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "emails": (ContactEmail, ("address", "kind")),
    "phones": (ContactPhone, ("number", "kind")),
    "addresses": (ContactAddress, ("kind", "street", "city", "region", "postal_code", "country")),
}


def _replace_children(contact: Contact, name: str, items: Sequence[T]) -> None:
    """Replace a nested list; items that carry the id of an existing row update it in place."""
    row_class, attrs = _CHILD_LISTS[name]
    _check_primary(name, items)
    by_id = _merge_children(getattr(contact, name), items, name)
    rows = []
    for pos, (item, primary) in enumerate(zip(items, _primary_flags(items), strict=True)):
        row = (by_id.get(item.id) if item.id else None) or row_class(id=uuid.uuid4())
        for attr in attrs:
            setattr(row, attr, getattr(item, attr))
        row.is_primary, row.position = primary, pos
        rows.append(row)
    setattr(contact, name, rows)


def _apply(contact: Contact, fields: ContactFields) -> None:
    sent = fields.model_fields_set
    for name in _SCALAR_FIELDS:
        if name in sent:
            setattr(contact, name, getattr(fields, name))
    for name in _CHILD_LISTS:
        if name in sent:
            _replace_children(contact, name, getattr(fields, name) or [])
    if "party_types" in sent:
        wanted = sorted(set(fields.party_types or []))
        have = {p.party_type: p for p in contact.party_types}
        contact.party_types = [have.get(t) or ContactPartyType(party_type=t) for t in wanted]
    contact.sort_name = _sort_name(contact)


def _sort_name(c: Contact) -> str:
    if c.kind == "company":
        return (c.company_name or "").lower()
    return ", ".join(p for p in (c.last_name, c.first_name) if p).lower()


def create(session: Session, principal: Principal, data: ContactCreate) -> Contact:
    _guard_mastered(principal, data.mastered_by, "create")
    contact = Contact(kind=data.kind, emails=[], phones=[], addresses=[], party_types=[])
    _apply(contact, data)
    _check_names(contact)
    session.add(contact)
    session.flush()
    record_event(session, "contact.created", ENTITY, contact.id, diff({}, snapshot(contact)))
    return contact


def update(session: Session, principal: Principal, contact: Contact, data: ContactUpdate) -> Contact:
    _guard_mastered(principal, contact.mastered_by, "change")
    _guard_mastered(principal, data.mastered_by, "change")
    if contact.archived_at is not None:
        raise conflict("This contact is archived; restore it before changing it.", "archived")
    before = snapshot(contact)
    _apply(contact, data)
    _check_names(contact)
    changes = diff(before, snapshot(contact))
    if changes:
        contact.updated_at = utcnow()
        session.flush()
        record_event(session, "contact.updated", ENTITY, contact.id, changes)
    return contact


def archive(session: Session, principal: Principal, contact: Contact) -> Contact:
    _guard_mastered(principal, contact.mastered_by, "archive")
    set_archived(session, contact, ENTITY, True)
    return contact


def restore(session: Session, principal: Principal, contact: Contact) -> Contact:
    _guard_mastered(principal, contact.mastered_by, "restore")
    set_archived(session, contact, ENTITY, False)
    return contact

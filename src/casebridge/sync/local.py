"""Casebridge's side of the sync: contacts and matters, read as canonical values and written through
the domain services as the connection's sync principal (so every rule, event and ETag applies, and
the events we cause are recognisable as ours)."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casebridge.contacts import repository as contacts_repo
from casebridge.contacts import service as contacts
from casebridge.contacts.schemas import ContactCreate, ContactUpdate
from casebridge.events.outbox import ACTOR
from casebridge.kit.context import Principal, Role
from casebridge.kit.problems import Problem
from casebridge.matters import repository as matters_repo
from casebridge.matters import service as matters
from casebridge.matters.schemas import MatterCreate, MatterUpdate
from casebridge.models import Contact, Matter
from casebridge.sync import canonical, repository
from casebridge.sync.entities import LocalState, Refs, StaleLocal
from casebridge.sync.errors import NeedsPerson


def sync_principal(connection_id: uuid.UUID, name: str) -> Principal:
    """Who the sync acts as: its events carry the connection's id as their actor."""
    return Principal(token_id=connection_id, name=f"{name} sync"[:200], role=Role.INTEGRATION)


def _principal(session: Session) -> Principal:
    principal = session.info.get(ACTOR)
    if not isinstance(principal, Principal):
        raise RuntimeError("the sync writes locally only inside a session whose actor is the sync principal")
    return principal


def _refused(what: str, exc: Exception) -> NeedsPerson:
    if isinstance(exc, ValidationError):
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    elif isinstance(exc, Problem):
        reasons = exc.detail or ""
        if exc.errors:
            reasons += " " + "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
    else:
        reasons = str(exc)
    return NeedsPerson(f"Casebridge refused to {what}: {reasons.strip()}")


class LocalContacts:
    entity = "contact"

    def label(self, values: dict[str, Any]) -> str:
        if values.get("kind") == "company":
            return str(values.get("company_name") or "")
        return " ".join(str(values[k]) for k in ("first_name", "middle_name", "last_name") if values.get(k))

    def values(self, c: Contact) -> dict[str, Any]:
        return canonical.contact(
            kind_=c.kind,
            prefix=c.title,
            first_name=c.first_name,
            middle_name=c.middle_name,
            last_name=c.last_name,
            company_name=c.company_name,
            emails_=[{"address": e.address, "kind": e.kind, "primary": e.is_primary} for e in c.emails],
            phones_=[{"number": p.number, "kind": p.kind, "primary": p.is_primary} for p in c.phones],
            addresses_=[
                {
                    "kind": a.kind,
                    "street": a.street,
                    "city": a.city,
                    "region": a.region,
                    "postal_code": a.postal_code,
                    "country": a.country,
                    "primary": a.is_primary,
                }
                for a in c.addresses
            ],
        )

    def read(self, session: Session, local_id: uuid.UUID, refs: Refs) -> LocalState | None:
        c = contacts_repo.get(session, local_id)
        if c is None:
            return None
        return LocalState(self.values(c), c.version, c.updated_at, c.archived_at is not None)

    @staticmethod
    def _fields(values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for ours, theirs in (
            ("title", "prefix"),
            ("first_name", "first_name"),
            ("middle_name", "middle_name"),
            ("last_name", "last_name"),
            ("company_name", "company_name"),
        ):
            if theirs in values:
                out[ours] = values[theirs]
        for name in ("emails", "phones", "addresses"):
            if name in values:
                out[name] = [dict(item) for item in values[name]]
        return out

    def create(self, session: Session, values: dict[str, Any], refs: Refs) -> uuid.UUID:
        try:
            data = ContactCreate(kind=values["kind"], **self._fields(values))
            return contacts.create(session, _principal(session), data).id
        except (ValidationError, Problem) as exc:
            raise _refused(f"create the contact {self.label(values)!r}", exc) from None

    def update(
        self, session: Session, local_id: uuid.UUID, version: int, changes: dict[str, Any], refs: Refs
    ) -> None:
        c = contacts_repo.get(session, local_id, for_update=True)
        if c is None or c.version != version:
            raise StaleLocal(str(local_id))
        try:
            contacts.update(session, _principal(session), c, ContactUpdate(**self._fields(changes)))
        except (ValidationError, Problem) as exc:
            raise _refused(f"update the contact {self.label(self.values(c))!r}", exc) from None

    def archive(self, session: Session, local_id: uuid.UUID) -> None:
        c = contacts_repo.get(session, local_id, for_update=True)
        if c is not None:
            contacts.archive(session, _principal(session), c)

    def restore(self, session: Session, local_id: uuid.UUID) -> None:
        c = contacts_repo.get(session, local_id, for_update=True)
        if c is not None:
            contacts.restore(session, _principal(session), c)

    def in_use(self, session: Session, local_id: uuid.UUID) -> str | None:
        number = matters_repo.display_number_of_client(session, local_id)
        return f"the client of matter {number}" if number else None

    def candidates(
        self, session: Session, connection_id: uuid.UUID, values: dict[str, Any]
    ) -> list[uuid.UUID]:
        company = values.get("kind") == "company"
        name = (values.get("company_name") if company else values.get("last_name")) or ""
        first = "" if company else (values.get("first_name") or "")
        column = Contact.company_name if company else Contact.last_name
        stmt = select(Contact.id).where(
            Contact.kind == ("company" if company else "person"),
            Contact.archived_at.is_(None),
            func.lower(func.coalesce(column, "")) == name.lower(),
            repository.not_linked(connection_id, "contact", Contact.id),
        )
        if not company:
            stmt = stmt.where(func.lower(func.coalesce(Contact.first_name, "")) == first.lower())
        return list(session.scalars(stmt.limit(20)))


def _restore_if_archived(session: Session, contact_id: uuid.UUID) -> None:
    """A Clio matter's client that was archived here comes back: the matter needs an active client,
    and in Clio the contact is in use."""
    c = contacts_repo.get(session, contact_id)  # no row lock unless needed: matters lock their client later
    if c is not None and c.archived_at is not None:
        c = contacts_repo.get(session, contact_id, for_update=True)
        assert c is not None
        contacts.restore(session, _principal(session), c)


class LocalMatters:
    entity = "matter"
    _DATES = ("open_date", "pending_date", "close_date")

    def label(self, values: dict[str, Any]) -> str:
        return str(values.get("display_number") or values.get("title") or "")

    def read(self, session: Session, local_id: uuid.UUID, refs: Refs) -> LocalState | None:
        m = matters_repo.get(session, local_id)
        if m is None:
            return None
        values = canonical.matter(
            title=m.title,
            status=m.status,
            open_date=m.open_date.isoformat() if m.open_date else None,
            pending_date=m.pending_date.isoformat() if m.pending_date else None,
            close_date=m.close_date.isoformat() if m.close_date else None,
            practice_area=m.practice_area,
            client=refs.remote_id("contact", m.client_id),
            display_number=m.display_number,
        )
        return LocalState(values, m.version, m.updated_at, m.archived_at is not None)

    def _fields(
        self, values: dict[str, Any], refs: Refs, *, target: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("title", "status", "practice_area", "display_number", *self._DATES):
            if name in values:
                out[name] = values[name]
        if "status" in values and target is not None:
            # A status change sets its date unless the date is sent: send them all, as they should end.
            for name in self._DATES:
                out.setdefault(name, target.get(name))
        if values.get("client") is not None:
            out["client_id"] = refs.local_id("contact", int(values["client"]))
            _restore_if_archived(refs.session, out["client_id"])
        return out

    def create(self, session: Session, values: dict[str, Any], refs: Refs) -> uuid.UUID:
        fields = self._fields(values, refs)
        if fields.get("display_number") is None:
            fields.pop("display_number", None)
        try:
            return matters.create(session, _principal(session), MatterCreate(**fields)).id
        except (ValidationError, Problem) as exc:
            raise _refused(f"create the matter {self.label(values)!r}", exc) from None

    def update(
        self, session: Session, local_id: uuid.UUID, version: int, changes: dict[str, Any], refs: Refs
    ) -> None:
        m = matters_repo.get(session, local_id, for_update=True)
        if m is None or m.version != version:
            raise StaleLocal(str(local_id))
        current = self.read(session, local_id, refs)
        target = {**(current.values if current else {}), **changes}
        fields = self._fields(changes, refs, target=target)
        if "display_number" in fields and fields["display_number"] is None:
            fields.pop("display_number")
        try:
            matters.update(session, _principal(session), m, MatterUpdate(**fields))
        except (ValidationError, Problem) as exc:
            raise _refused(f"update the matter {m.display_number!r}", exc) from None

    def archive(self, session: Session, local_id: uuid.UUID) -> None:
        m = matters_repo.get(session, local_id)
        if m is not None:
            matters.archive(session, m)

    def restore(self, session: Session, local_id: uuid.UUID) -> None:
        m = matters_repo.get(session, local_id)
        if m is not None:
            matters.restore(session, m)

    def in_use(self, session: Session, local_id: uuid.UUID) -> str | None:
        return None

    def candidates(
        self, session: Session, connection_id: uuid.UUID, values: dict[str, Any]
    ) -> list[uuid.UUID]:
        number = values.get("display_number")
        if not number:
            return []
        stmt = select(Matter.id).where(
            Matter.display_number == number,
            Matter.archived_at.is_(None),
            repository.not_linked(connection_id, "matter", Matter.id),
        )
        return list(session.scalars(stmt))


LOCAL_CONTACTS = LocalContacts()
LOCAL_MATTERS = LocalMatters()

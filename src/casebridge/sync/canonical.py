"""Canonical values: the one plain-JSON shape both sides of a sync are compared in.

Each side's mapping turns its record into this shape, so a difference in formatting (a trailing space
one system kept, ``"Work"`` against ``"work"``, no primary flag against "the first is primary") never
looks like a change. Every function here is idempotent: canonical(canonical(x)) == canonical(x).

Contact: ``kind`` (person|company), ``prefix``, ``first_name``, ``middle_name``, ``last_name``,
``company_name``, ``emails`` [{address, kind, primary}], ``phones`` [{number, kind, primary}],
``addresses`` [{kind, street, city, region, postal_code, country, primary}].

Matter: ``title``, ``status`` (open|pending|closed), ``open_date``, ``pending_date``, ``close_date``
(only while closed), ``practice_area`` (a name), ``client`` (the remote id of the client contact),
``display_number``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

CONTACT_FIELDS = (
    "kind",
    "prefix",
    "first_name",
    "middle_name",
    "last_name",
    "company_name",
    "emails",
    "phones",
    "addresses",
)
MATTER_FIELDS = (
    "title",
    "status",
    "open_date",
    "pending_date",
    "close_date",
    "practice_area",
    "client",
    "display_number",
)
EMAIL_KINDS = ("work", "home", "other")
PHONE_KINDS = ("work", "home", "mobile", "fax", "other")
ADDRESS_KINDS = ("work", "home", "billing", "other")
ADDRESS_PARTS = ("street", "city", "region", "postal_code", "country")


def text(value: Any) -> str | None:
    """Strip; empty is None."""
    if value is None:
        return None
    out = str(value).strip()
    return out or None


def kind(value: Any, allowed: tuple[str, ...], *, aliases: dict[str, str] | None = None) -> str:
    lowered = (text(value) or "other").lower()
    lowered = (aliases or {}).get(lowered, lowered)
    return lowered if lowered in allowed else "other"


def with_one_primary(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exactly one primary in a non-empty list: the first marked one, else the first."""
    marked = next((i for i, item in enumerate(items) if item.get("primary")), 0)
    return [{**item, "primary": i == marked} for i, item in enumerate(items)]


def emails(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [
        {
            "address": text(i.get("address")),
            "kind": kind(i.get("kind"), EMAIL_KINDS),
            "primary": bool(i.get("primary")),
        }
        for i in items
        if text(i.get("address"))
    ]
    return with_one_primary(out)


def phones(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [
        {
            "number": text(i.get("number")),
            "kind": kind(i.get("kind"), PHONE_KINDS, aliases={"personal": "home"}),
            "primary": bool(i.get("primary")),
        }
        for i in items
        if text(i.get("number"))
    ]
    return with_one_primary(out)


def addresses(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i in items:
        parts = {p: text(i.get(p)) for p in ADDRESS_PARTS}
        if not any(parts.values()):
            continue
        out.append({"kind": kind(i.get("kind"), ADDRESS_KINDS), **parts, "primary": bool(i.get("primary"))})
    return with_one_primary(out)


def contact(
    *,
    kind_: str,
    prefix: Any,
    first_name: Any,
    middle_name: Any,
    last_name: Any,
    company_name: Any,
    emails_: Iterable[dict[str, Any]],
    phones_: Iterable[dict[str, Any]],
    addresses_: Iterable[dict[str, Any]],
) -> dict[str, Any]:
    person = kind_ == "person"
    return {
        "kind": "person" if person else "company",
        "prefix": text(prefix) if person else None,
        "first_name": text(first_name) if person else None,
        "middle_name": text(middle_name) if person else None,
        "last_name": text(last_name) if person else None,
        "company_name": None if person else text(company_name),
        "emails": emails(emails_),
        "phones": phones(phones_),
        "addresses": addresses(addresses_),
    }


def matter(
    *,
    title: Any,
    status: Any,
    open_date: Any,
    pending_date: Any,
    close_date: Any,
    practice_area: Any,
    client: int | None,
    display_number: Any,
) -> dict[str, Any]:
    status_ = (text(status) or "open").lower()
    return {
        "title": text(title),
        "status": status_,
        "open_date": text(open_date),
        "pending_date": text(pending_date),
        "close_date": text(close_date) if status_ == "closed" else None,
        "practice_area": text(practice_area),
        "client": client,
        "display_number": text(display_number),
    }


# --- history: is this record on the other side the same one? ------------------------------------


def match_key(entity: str, values: dict[str, Any]) -> str | None:
    """What two records must share to be the same one: a contact's kind and name, a matter's number."""
    if entity == "contact":
        name = (
            values.get("company_name") if values.get("kind") == "company" else values.get("last_name")
        ) or ""
        first = values.get("first_name") or ""
        return f"{values.get('kind')}|{name.lower()}|{first.lower()}" if name or first else None
    if entity == "matter":
        number = values.get("display_number")
        return f"number|{number}" if number else None
    return None


def _primary_email(values: dict[str, Any]) -> str | None:
    return next((str(e["address"]).lower() for e in values.get("emails") or [] if e.get("primary")), None)


def same_record(entity: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two records (one from each side) that are probably the same: the same key and, for contacts
    that both have one, the same primary email (history is linked rather than duplicated)."""
    key = match_key(entity, a)
    if key is None or key != match_key(entity, b):
        return False
    if entity == "contact":
        mine, theirs = _primary_email(a), _primary_email(b)
        if mine and theirs and mine != theirs:
            return False
    return True


# --- a value a person gives (resolving a conflict) -------------------------------------------------

_LISTS = {"emails": (emails, "address"), "phones": (phones, "number"), "addresses": (addresses, None)}
_DATES = ("open_date", "pending_date", "close_date")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def given(entity: str, name: str, value: Any) -> Any:
    """A field's value as a person typed it, in canonical form; ValueError saying what is wrong."""
    fields = CONTACT_FIELDS if entity == "contact" else MATTER_FIELDS
    if name not in fields:
        raise ValueError(f"{entity}s have no synced field {name}")
    if name in _LISTS:
        shape, required = _LISTS[name]
        if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
            raise ValueError(f"{name} is a list of objects")
        if required and any(not text(i.get(required)) for i in value):
            raise ValueError(f"every item of {name} needs its {required}")
        return shape(value)
    if name == "client":
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        raise ValueError(
            "client is the Clio id of the client contact (a positive integer): a matter needs one"
        )
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} is text")
    out = text(value)
    if name == "kind" and out not in ("person", "company"):
        raise ValueError("kind is person or company")
    if name == "status" and (out or "").lower() not in ("open", "pending", "closed"):
        raise ValueError("status is open, pending or closed")
    if name in _DATES and out is not None:
        if not _ISO_DATE.fullmatch(out):  # (fromisoformat also takes 20260105 and week dates)
            raise ValueError(f"{name} is a date, YYYY-MM-DD")
        try:
            out = date.fromisoformat(out).isoformat()
        except ValueError:
            raise ValueError(f"{name} is a date, YYYY-MM-DD") from None
    if name in ("title", "display_number", "status") and out is None:
        raise ValueError(f"{name} cannot be empty")
    return out.lower() if name == "status" and out else out

"""Matter numbers: a firm-wide gap-free sequence and a display number built from a safe scheme.

A scheme is a format string over a fixed set of fields, for example ``{number:05d}-{client_last_name}``
(Clio's default style, ``00001-Smith``). Only plain ``{field}`` or ``{field:spec}`` is allowed: no
attribute or index access, no conversions, so a scheme can never reach into Python objects.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from casebridge.models import Counter, FirmSetting

DEFAULT_SCHEME = "{number:05d}-{client_last_name}"
SETTING_KEY = "matter_numbering"
COUNTER = "matter"
FIELDS = {
    "number": "the firm-wide sequential matter number (an integer; use a spec like :05d)",
    "client_last_name": "the client's last name, or a company client's name",
    "client_name": "the client's full display name",
    "practice_area": "the matter's practice area (empty when none)",
    "year": "the four-digit year the matter was opened",
}
SAMPLE: dict[str, Any] = {
    "number": 1,
    "client_last_name": "Smith",
    "client_name": "Jane Smith",
    "practice_area": "Conveyancing",
    "year": 2026,
}
MAX_LENGTH = 100


class SchemeError(ValueError):
    pass


def validate_scheme(scheme: str) -> str:
    if not scheme or len(scheme) > 200:
        raise SchemeError("a scheme is 1 to 200 characters")
    seen = set()
    try:
        parsed = list(string.Formatter().parse(scheme))
    except ValueError as exc:
        raise SchemeError(f"not a valid scheme: {exc}") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in FIELDS:
            raise SchemeError(f"unknown field {{{field}}}; use one of: {', '.join(FIELDS)}")
        if conversion:
            raise SchemeError("conversions such as !r are not allowed")
        if spec and "{" in spec:
            raise SchemeError("nested fields are not allowed in a format spec")
        seen.add(field)
    if "number" not in seen:
        raise SchemeError("a scheme must contain {number} so every display number is unique")
    try:
        render(scheme, SAMPLE)
    except (ValueError, TypeError) as exc:
        raise SchemeError(f"the scheme cannot be applied: {exc}") from None
    return scheme


def render(scheme: str, values: dict[str, Any]) -> str:
    out = []
    for literal, field, spec, _conversion in string.Formatter().parse(scheme):
        out.append(literal)
        if field is not None:
            out.append(format(values[field], spec or ""))
    text = re.sub(r"\s+", " ", "".join(out)).strip()
    return text[:MAX_LENGTH]


@dataclass(frozen=True)
class NumberingSettings:
    scheme: str


def get_settings(session: Session) -> NumberingSettings:
    row = session.get(FirmSetting, SETTING_KEY)
    scheme = row.value.get("scheme") if row is not None and isinstance(row.value, dict) else None
    return NumberingSettings(scheme=scheme or DEFAULT_SCHEME)


def set_settings(session: Session, scheme: str) -> tuple[NumberingSettings, NumberingSettings]:
    before = get_settings(session)
    row = session.get(FirmSetting, SETTING_KEY)
    if row is None:
        session.add(FirmSetting(key=SETTING_KEY, value={"scheme": scheme}))
    else:
        row.value = {"scheme": scheme}
    session.flush()
    return before, NumberingSettings(scheme=scheme)


def next_number(session: Session) -> int:
    """Take the next matter number under the counter's row lock (gap-free: a rollback returns it)."""
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(Counter)
    session.execute(ins.values(name=COUNTER, value=0).on_conflict_do_nothing(index_elements=["name"]))
    value = session.scalar(
        update(Counter)
        .where(Counter.name == COUNTER)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    )
    assert value is not None
    return int(value)


def current_number(session: Session) -> int:
    return int(session.scalar(select(Counter.value).where(Counter.name == COUNTER)) or 0)


def display_values(
    number: int, client_last: str, client_name: str, practice_area: str | None, opened: date
) -> dict[str, Any]:
    return {
        "number": number,
        "client_last_name": client_last,
        "client_name": client_name,
        "practice_area": practice_area or "",
        "year": opened.year,
    }

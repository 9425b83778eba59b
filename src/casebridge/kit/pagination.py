"""Opaque keyset cursors: stable paging under concurrent inserts, on any allowed ordering.

A cursor is base64url JSON naming the ordering and the last row's (sort value, id). The next page is
``(sort, id) > (last_sort, last_id)`` (``<`` when descending), so rows inserted while a client pages
neither repeat nor vanish, and no OFFSET scan grows with the page number.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from casebridge.kit.problems import Problem, field_error, validation
from casebridge.kit.schemas import UtcDateTime

T = TypeVar("T")
M = TypeVar("M")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}.")]
UpdatedSinceQuery = Annotated[
    UtcDateTime | None,
    Query(description="Only records changed at or after this time (ISO 8601; no offset means UTC)."),
]
CursorQuery = Annotated[
    str | None, Query(description="The `next_cursor` of the previous page; omit for the first page.")
]


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class PageResult(Generic[M]):
    rows: list[M]
    next_cursor: str | None


def _encode_value(value: Any) -> list[Any]:
    if isinstance(value, datetime):
        return ["dt", value.isoformat()]
    if isinstance(value, date):
        return ["d", value.isoformat()]
    if isinstance(value, int):
        return ["i", value]
    return ["s", str(value)]


def _decode_value(tagged: list[Any]) -> Any:
    tag, raw = tagged
    if tag == "dt":
        return datetime.fromisoformat(raw)
    if tag == "d":
        return date.fromisoformat(raw)
    if tag == "i":
        return int(raw)
    if tag == "s":
        return str(raw)
    raise ValueError(tag)


def encode_cursor(order: str, value: Any, row_id: uuid.UUID | int) -> str:
    payload = {"o": order, "v": _encode_value(value), "i": str(row_id)}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _bad_cursor(message: str) -> Problem:
    return validation([field_error("query.cursor", message, "invalid_cursor")])


def decode_cursor(cursor: str, order: str) -> tuple[Any, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        value = _decode_value(payload["v"])
        row_id = str(payload["i"])
        cursor_order = payload["o"]
    except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
        raise _bad_cursor("The cursor is not one this API issued; start again without a cursor.") from None
    if cursor_order != order:
        raise _bad_cursor(f"The cursor was issued for order '{cursor_order}', not '{order}'.")
    return value, row_id


def order_options(*names: str) -> str:
    return ", ".join(f"{n}, -{n}" for n in names)


def paginate(
    session: Session,
    stmt: Select[M],
    *,
    columns: dict[str, InstrumentedAttribute[Any]],
    id_column: InstrumentedAttribute[Any],
    order: str,
    limit: int,
    cursor: str | None,
) -> PageResult[M]:
    descending = order.startswith("-")
    name = order.removeprefix("-")
    if name not in columns:
        allowed = order_options(*columns)
        raise validation([field_error("query.order", f"Unknown ordering '{order}'; use one of: {allowed}.")])
    column = columns[name]
    if cursor is not None:
        value, raw_id = decode_cursor(cursor, order)
        try:
            row_id: Any = id_column.type.python_type(raw_id)
        except ValueError:
            raise _bad_cursor("The cursor is damaged; start again without a cursor.") from None
        cond: ColumnElement[bool]
        if descending:
            cond = or_(column < value, and_(column == value, id_column < row_id))
        else:
            cond = or_(column > value, and_(column == value, id_column > row_id))
        stmt = stmt.where(cond)
    if descending:
        stmt = stmt.order_by(column.desc(), id_column.desc())
    else:
        stmt = stmt.order_by(column.asc(), id_column.asc())
    rows = list(session.scalars(stmt.limit(limit + 1)))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(order, getattr(last, column.key), getattr(last, id_column.key))
    return PageResult(rows, next_cursor)

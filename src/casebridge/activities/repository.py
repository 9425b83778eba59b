"""All SQL for activities."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from casebridge.models import Activity

S = TypeVar("S", bound=Select[*tuple[Any, ...]])
ORDER_COLUMNS = {
    "date": Activity.date,
    "created_at": Activity.created_at,
    "updated_at": Activity.updated_at,
}


@dataclass(frozen=True)
class Filters:
    matter_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    kind: str | None = None
    state: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    updated_since: datetime | None = None


@dataclass(frozen=True)
class CurrencySums:
    currency: str
    time: Decimal
    expenses: Decimal
    duration_seconds: int
    count: int


def get(session: Session, activity_id: uuid.UUID) -> Activity | None:
    return session.get(Activity, activity_id)


def hard_delete(session: Session, activity: Activity) -> None:
    session.delete(activity)
    session.flush()


def _where(stmt: S, f: Filters) -> S:
    if f.matter_id:
        stmt = stmt.where(Activity.matter_id == f.matter_id)
    if f.user_id:
        stmt = stmt.where(Activity.user_id == f.user_id)
    if f.kind:
        stmt = stmt.where(Activity.kind == f.kind)
    if f.state:
        stmt = stmt.where(Activity.state == f.state)
    if f.date_from:
        stmt = stmt.where(Activity.date >= f.date_from)
    if f.date_to:
        stmt = stmt.where(Activity.date <= f.date_to)
    if f.updated_since:
        stmt = stmt.where(Activity.updated_at >= f.updated_since)
    return stmt


def list_query(filters: Filters) -> Select[Activity]:
    return _where(select(Activity), filters)


def sums_by_currency(session: Session, filters: Filters) -> list[CurrencySums]:
    """Per-currency sums of the stored (already rounded) line totals, exact: amounts are scaled integers."""
    is_time = Activity.kind == "time"
    zero = Decimal(0)
    stmt = _where(
        select(
            Activity.currency,
            func.sum(case((is_time, Activity.total_amount), else_=None)),
            func.sum(case((is_time, None), else_=Activity.total_amount)),
            func.sum(Activity.duration_seconds),
            func.count(),
        ),
        filters,
    )
    stmt = stmt.group_by(Activity.currency).order_by(Activity.currency)
    return [
        CurrencySums(
            currency=currency,
            time=_decimal(time_sum) or zero,
            expenses=_decimal(expense_sum) or zero,
            duration_seconds=int(seconds or 0),
            count=int(count),
        )
        for currency, time_sum, expense_sum, seconds, count in session.execute(stmt)
    ]


def _decimal(value: object) -> Decimal | None:
    return value if isinstance(value, Decimal) else None

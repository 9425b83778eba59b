"""Portable column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

# SQLite only makes a rowid alias (and AUTOINCREMENT) of a column declared exactly INTEGER.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
PortableJSON = JSON().with_variant(postgresql.JSONB(), "postgresql")

AMOUNT_SCALE = 4


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp, stored as ``timestamptz`` or as SQLite's fixed-width text."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Amount(TypeDecorator[Decimal]):
    """An exact decimal amount stored as a scaled integer (4 decimal places) on every database.

    SQLite has no exact decimal type (NUMERIC becomes a float), so amounts are kept as integers of
    1/10,000ths: exact, sortable and summable in SQL on both databases.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        scaled = Decimal(value).scaleb(AMOUNT_SCALE)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"amount {value} has more than {AMOUNT_SCALE} decimal places")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(int(value)).scaleb(-AMOUNT_SCALE)


def utcnow() -> datetime:
    return datetime.now(UTC)

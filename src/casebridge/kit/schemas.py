"""Pydantic building blocks shared by the domains' schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from casebridge.money import CURRENCY_PATTERN, check_amount, check_rate, format_amount

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Currency = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN)]


class StrictModel(BaseModel):
    """Request bodies: unknown fields are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class _MoneyBase(StrictModel):
    amount: Decimal = Field(description='Decimal string, for example "1250.00"; never a binary float.')
    currency: Currency = Field(description="ISO 4217 code, for example GBP.", examples=["GBP"])

    @field_validator("amount", mode="before")
    @classmethod
    def _no_floats(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError(
                'send amounts as decimal strings ("12.50") or integers, not floating-point numbers'
            )
        return value


class Money(_MoneyBase):
    """An amount in whole minor units of its currency."""

    @model_validator(mode="after")
    def _minor_units(self) -> Money:
        self.amount = check_amount(self.amount, self.currency)
        return self


class Rate(_MoneyBase):
    """An hourly rate: up to 4 decimal places."""

    @model_validator(mode="after")
    def _places(self) -> Rate:
        self.amount = check_rate(self.amount)
        return self


class MoneyOut(BaseModel):
    amount: str = Field(examples=["1250.00"])
    currency: str = Field(examples=["GBP"])

    @classmethod
    def of(cls, amount: Decimal, currency: str) -> MoneyOut:
        return cls(amount=format_amount(amount, currency), currency=currency)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
"""A timestamp; one without an offset is taken as UTC."""

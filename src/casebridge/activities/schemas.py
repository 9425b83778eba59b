"""Request and response shapes for activities: time entries and expenses.

``POST /activities`` takes a union discriminated on ``kind``. Its field errors are reported at the
body's own paths (``body.rate``, not ``body.time.rate``): the tag pydantic puts in front of every
location is removed, and a missing or unknown ``kind`` is reported at ``body.kind``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from casebridge.kit.etag import etag_for
from casebridge.kit.schemas import Money, MoneyOut, Rate, StrictModel
from casebridge.models import Activity

ActivityKind = Literal["time", "expense"]
ActivityState = Literal["draft", "submitted", "approved", "billed"]
KINDS: tuple[str, ...] = ("time", "expense")

MAX_DURATION_SECONDS = 7 * 24 * 3600
"""One entry covers at most a week: longer is almost certainly a units mistake (minutes sent as seconds)."""

Duration = Annotated[
    int,
    Field(
        strict=True,
        ge=0,
        le=MAX_DURATION_SECONDS,
        description=f"Whole seconds, 0 to {MAX_DURATION_SECONDS} (7 days).",
        examples=[5400],
    ),
]
Narrative = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20000)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
BillReference = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class TimeEntryCreate(StrictModel):
    """A time entry: hourly (`duration_seconds` and `rate`) or a flat fee (`flat_fee`), never both."""

    kind: Literal["time"]
    matter_id: uuid.UUID
    date: dt.date
    user_id: uuid.UUID | None = Field(
        default=None, description="The fee earner; defaults to the user the API token belongs to."
    )
    description: Narrative | None = Field(default=None, description="The narrative shown on the bill.")
    duration_seconds: Duration | None = None
    rate: Rate | None = Field(default=None, description="Hourly rate; up to 4 decimal places.")
    flat_fee: Money | None = None


class ExpenseCreate(StrictModel):
    """An expense (disbursement) paid out on the matter."""

    kind: Literal["expense"]
    matter_id: uuid.UUID
    date: dt.date
    amount: Money
    supplier_id: uuid.UUID | None = Field(default=None, description="The contact paid; must not be archived.")
    category: Category | None = Field(default=None, examples=["search fees", "court fees", "travel"])
    description: Narrative | None = None
    user_id: uuid.UUID | None = Field(
        default=None, description="Who incurred it; defaults to the user the API token belongs to."
    )


_KIND_MESSAGE = "kind must be 'time' (a time entry) or 'expense'"


def _kind_of(value: Any) -> Any:
    return value.get("kind") if isinstance(value, dict) else None


def _untagged(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Report errors at the body's own paths: drop the union's tag, and put tag errors on ``kind``."""
    try:
        return handler(value)
    except ValidationError as exc:
        details = []
        for error in exc.errors():
            loc, kind, message = tuple(error["loc"]), error["type"], error["msg"]
            if kind == "union_tag_not_found":
                loc, kind, message = ("kind",), "missing", _KIND_MESSAGE
            elif kind == "union_tag_invalid":
                loc, kind, message = ("kind",), "literal_error", f"{_KIND_MESSAGE}; got {_kind_of(value)!r}"
            elif loc and loc[0] in KINDS:
                loc = loc[1:]
            # The same type and message at the new location (a custom error keeps the message as it is).
            error_type = PydanticCustomError(kind, message)
            details.append(InitErrorDetails(type=error_type, loc=loc, input=error["input"]))
        raise ValidationError.from_exception_data(exc.title, details) from None


# Discriminator, not Field(discriminator=...): FastAPI lifts a FieldInfo off the body's type, which
# would put the tag outside the wrap validator.
ActivityCreate = Annotated[TimeEntryCreate | ExpenseCreate, Discriminator("kind"), WrapValidator(_untagged)]


class ActivityUpdate(StrictModel):
    """Only the fields sent change; `null` clears an optional one. The merged activity is validated
    again as a whole, so switching an hourly entry to a flat fee means sending
    `{"flat_fee": {...}, "duration_seconds": null, "rate": null}`. The currency is fixed at creation."""

    matter_id: uuid.UUID | None = None
    date: dt.date | None = None
    user_id: uuid.UUID | None = None
    description: Narrative | None = None
    # Time entries.
    duration_seconds: Duration | None = None
    rate: Rate | None = None
    flat_fee: Money | None = None
    # Expenses.
    amount: Money | None = None
    supplier_id: uuid.UUID | None = None
    category: Category | None = None


class RejectIn(StrictModel):
    reason: Reason = Field(description="Why it goes back to draft; recorded in the activity.rejected event.")


class BillIn(StrictModel):
    bill_reference: BillReference = Field(examples=["INV-2026-0042"])


class ActivityOut(BaseModel):
    id: uuid.UUID
    etag: str
    kind: str
    matter_id: uuid.UUID
    date: dt.date
    state: str
    user_id: uuid.UUID | None
    description: str | None
    billing_method: str | None = Field(description="hourly or flat for time entries; null for expenses.")
    duration_seconds: int | None
    rate: MoneyOut | None
    flat_fee: MoneyOut | None
    amount: MoneyOut | None = Field(description="An expense's amount; null for time entries.")
    supplier_id: uuid.UUID | None
    category: str | None
    total: MoneyOut = Field(
        description="Hourly: duration x rate / 3600 rounded once, half up, to the currency's minor unit; "
        "flat: the fee; expense: the amount."
    )
    submitted_at: dt.datetime | None
    approved_at: dt.datetime | None
    billed_at: dt.datetime | None
    bill_reference: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, a: Activity) -> ActivityOut:
        def money(amount: Decimal | None) -> MoneyOut | None:
            return None if amount is None else MoneyOut.of(amount, a.currency)

        return cls(
            id=a.id,
            etag=etag_for(a.id, a.version),
            kind=a.kind,
            matter_id=a.matter_id,
            date=a.date,
            state=a.state,
            user_id=a.user_id,
            description=a.description,
            billing_method=a.billing_method,
            duration_seconds=a.duration_seconds,
            rate=money(a.rate_amount),
            flat_fee=money(a.flat_amount),
            amount=money(a.expense_amount),
            supplier_id=a.supplier_id,
            category=a.category,
            total=MoneyOut.of(a.total_amount, a.currency),
            submitted_at=a.submitted_at,
            approved_at=a.approved_at,
            billed_at=a.billed_at,
            bill_reference=a.bill_reference,
            created_at=a.created_at,
            updated_at=a.updated_at,
        )


class CurrencyTotals(BaseModel):
    currency: str
    time: MoneyOut = Field(description="Sum of the time entries' rounded totals.")
    expenses: MoneyOut = Field(description="Sum of the expenses' amounts.")
    total: MoneyOut = Field(description="time + expenses.")
    duration_seconds: int = Field(description="Sum of the hourly entries' durations.")
    count: int = Field(description="Number of activities in this currency.")


class TotalsOut(BaseModel):
    totals: list[CurrencyTotals] = Field(description="One row per currency, sorted by currency code.")

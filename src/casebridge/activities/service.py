"""Activity rules: hourly / flat / expense money, the approval states, locking and deletion.

States: ``draft -> submitted -> approved -> billed``; ``reject`` sends a submitted or approved entry
back to draft with a reason. Who may do what:

- create, edit and delete drafts, submit: any writer (staff, integration, admin);
- approve, reject, bill: admin or integration;
- edit or delete a submitted or approved entry: admin only (it is locked for everyone else);
- a billed entry is immutable and cannot be deleted, by anyone.

Money follows :mod:`casebridge.money`: an hourly entry's total is ``duration x rate / 3600`` rounded
once, half up, to the currency's minor unit; a flat fee's total is the fee; an expense's is its amount.
The total is recomputed and stored on every write. An activity's currency is fixed when it is created.
Activities cannot be recorded on (or moved to) a closed or archived matter; entries already on a
matter that is later closed can still be edited and taken through approval and billing.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from casebridge.activities import repository
from casebridge.activities.schemas import (
    ActivityOut,
    ActivityUpdate,
    CurrencyTotals,
    ExpenseCreate,
    TimeEntryCreate,
    TotalsOut,
)
from casebridge.contacts import repository as contacts
from casebridge.db.types import utcnow
from casebridge.events import diff, record_event
from casebridge.events.repository import list_events
from casebridge.kit.context import Principal, Role
from casebridge.kit.problems import Problem, conflict, field_error, not_found, validation
from casebridge.kit.schemas import Money, MoneyOut, Rate
from casebridge.models import Activity, Matter
from casebridge.money import check_amount, time_total
from casebridge.users.service import require_active

ENTITY = "activity"
APPROVERS: tuple[Role, ...] = (Role.ADMIN, Role.INTEGRATION)
LOCKED_STATES = ("submitted", "approved")

_TIME_ONLY = ("duration_seconds", "rate", "flat_fee")
_EXPENSE_ONLY = ("amount", "supplier_id", "category")
_NOT_NULL = ("matter_id", "date", "amount")

# action: (states it starts from, state it leads to, event type)
TRANSITIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "submit": (("draft",), "submitted", "activity.submitted"),
    "approve": (("submitted",), "approved", "activity.approved"),
    "reject": (("submitted", "approved"), "draft", "activity.rejected"),
    "bill": (("approved",), "billed", "activity.billed"),
}


def snapshot(activity: Activity) -> dict[str, Any]:
    return ActivityOut.of(activity).model_dump(
        mode="json", exclude={"id", "etag", "created_at", "updated_at"}
    )


def get_or_404(session: Session, activity_id: uuid.UUID) -> Activity:
    activity = repository.get(session, activity_id)
    if activity is None:
        raise not_found("activity", activity_id)
    return activity


def has_history(session: Session, activity_id: uuid.UUID) -> bool:
    """True while the activity exists, and after a delete (its events outlive it)."""
    if repository.get(session, activity_id) is not None:
        return True
    return bool(list_events(session, after=0, limit=1, entity_type=ENTITY, entity_id=str(activity_id)))


def invalid_state(detail: str, state: str) -> Problem:
    return Problem(409, detail, slug="invalid-state", extra={"state": state})


# References ---------------------------------------------------------------------------------------


def _open_matter(session: Session, matter_id: uuid.UUID) -> Matter:
    matter = session.get(Matter, matter_id)
    if matter is None:
        raise validation([field_error("body.matter_id", f"no matter with id {matter_id}", "unknown_matter")])
    if matter.archived_at is not None:
        raise conflict(
            f"Matter {matter.display_number} is archived: activities cannot be recorded on it. "
            "Restore the matter first.",
            "archived",
        )
    if matter.status == "closed":
        raise conflict(
            f"Matter {matter.display_number} is closed: time and expenses cannot be recorded on a closed "
            "matter. Reopen it (set its status to open) first."
        )
    return matter


def _check_supplier(session: Session, supplier_id: uuid.UUID) -> None:
    if not contacts.exists_active(session, supplier_id):
        raise validation(
            [field_error("body.supplier_id", f"no active contact with id {supplier_id}", "unknown_contact")]
        )


def _check_fee_earner(activity: Activity) -> None:
    if activity.kind == "time" and activity.user_id is None:
        raise validation(
            [
                field_error(
                    "body.user_id",
                    "a time entry needs a fee earner: send user_id (this API token is not linked to a user)",
                    "missing",
                )
            ]
        )


# Money --------------------------------------------------------------------------------------------


def _not_negative(errors: list[dict[str, str]], field: str, amount: Decimal | None) -> None:
    if amount is not None and amount < 0:
        errors.append(field_error(field, f"must not be negative; got {amount}", "negative"))


def _time_money(
    duration: int | None,
    rate: Decimal | None,
    flat: Decimal | None,
    currency: str,
    *,
    updating: bool,
) -> tuple[str, Decimal]:
    """The billing method and total of a time entry; 422 naming the fields when they do not add up."""
    errors: list[dict[str, str]] = []
    if flat is not None and (duration is not None or rate is not None):
        hint = (
            "; to switch to a flat fee send duration_seconds: null and rate: null with it" if updating else ""
        )
        errors.append(
            field_error(
                "body.flat_fee",
                "a time entry is either hourly (duration_seconds and rate) or a flat fee, not both" + hint,
                "hourly_and_flat",
            )
        )
    elif flat is None:
        for field, value in (("duration_seconds", duration), ("rate", rate)):
            if value is None:
                errors.append(
                    field_error(
                        f"body.{field}",
                        f"an hourly time entry needs {field}; or send flat_fee for a flat-fee entry",
                        "missing",
                    )
                )
    _not_negative(errors, "body.rate", rate)
    _not_negative(errors, "body.flat_fee", flat)
    if errors:
        raise validation(errors)
    if flat is not None:
        return "flat", flat
    assert duration is not None
    assert rate is not None
    total = time_total(duration, rate, currency)
    try:
        check_amount(total, currency)
    except ValueError as exc:
        raise validation(
            [field_error("body.rate", f"duration x rate comes to {total} {currency}: {exc}", "too_large")]
        ) from None
    return "hourly", total


def _set_time_money(
    activity: Activity, duration: int | None, rate: Decimal | None, flat: Decimal | None, *, updating: bool
) -> None:
    method, total = _time_money(duration, rate, flat, activity.currency, updating=updating)
    activity.billing_method = method
    activity.duration_seconds = duration
    activity.rate_amount = rate
    activity.flat_amount = flat
    activity.total_amount = total


def _set_expense_money(activity: Activity, amount: Decimal) -> None:
    errors: list[dict[str, str]] = []
    _not_negative(errors, "body.amount", amount)
    if errors:
        raise validation(errors)
    activity.expense_amount = amount
    activity.total_amount = amount


def _same_currency(activity: Activity, sent: dict[str, Money | Rate | None]) -> None:
    errors = [
        field_error(
            f"body.{field}.currency",
            f"this activity is recorded in {activity.currency}; amounts and rates must be in "
            f"{activity.currency} too (to change currency, delete the draft and record it again)",
            "currency_mismatch",
        )
        for field, money in sent.items()
        if money is not None and money.currency != activity.currency
    ]
    if errors:
        raise validation(errors)


def _create_currency(data: TimeEntryCreate) -> str:
    # With neither, or both (a 422 either way, raised by _time_money), the currency is never used.
    money = data.rate or data.flat_fee
    return money.currency if money is not None else ""


# Writes -------------------------------------------------------------------------------------------


def create(session: Session, principal: Principal, data: TimeEntryCreate | ExpenseCreate) -> Activity:
    _open_matter(session, data.matter_id)
    user_id = data.user_id if "user_id" in data.model_fields_set else principal.user_id
    if user_id is not None:
        require_active(session, user_id, "body.user_id")
    activity = Activity(
        kind=data.kind,
        matter_id=data.matter_id,
        date=data.date,
        state="draft",
        user_id=user_id,
        description=data.description,
    )
    if isinstance(data, TimeEntryCreate):
        activity.currency = _create_currency(data)
        _set_time_money(
            activity,
            data.duration_seconds,
            data.rate.amount if data.rate else None,
            data.flat_fee.amount if data.flat_fee else None,
            updating=False,
        )
        _check_fee_earner(activity)
    else:
        if data.supplier_id is not None:
            _check_supplier(session, data.supplier_id)
        activity.currency = data.amount.currency
        activity.supplier_id = data.supplier_id
        activity.category = data.category
        _set_expense_money(activity, data.amount.amount)
    session.add(activity)
    session.flush()
    record_event(session, "activity.created", ENTITY, activity.id, diff({}, snapshot(activity)))
    return activity


def _guard_editable(principal: Principal, activity: Activity, verb: str) -> None:
    """Billed: immutable for everyone. Submitted or approved: locked to all but admins."""
    if activity.state == "billed":
        raise invalid_state(
            f"This activity is billed (bill {activity.bill_reference}): billed entries cannot be changed "
            "or deleted.",
            activity.state,
        )
    if activity.state in LOCKED_STATES and principal.role is not Role.ADMIN:
        raise invalid_state(
            f"This activity is {activity.state}: submitted and approved entries are locked and only an "
            f"admin can {verb} them; ask an admin, or have it rejected back to draft.",
            activity.state,
        )


def _check_fields(activity: Activity, data: ActivityUpdate) -> None:
    sent = data.model_fields_set
    errors: list[dict[str, str]] = []
    foreign = _EXPENSE_ONLY if activity.kind == "time" else _TIME_ONLY
    owner = "expenses" if activity.kind == "time" else "time entries"
    for name in foreign:
        if name in sent:
            errors.append(field_error(f"body.{name}", f"only {owner} have {name}", "not_applicable"))
    for name in _NOT_NULL:
        if name in sent and name not in foreign and getattr(data, name) is None:
            errors.append(field_error(f"body.{name}", f"{name} cannot be null", "null"))
    if errors:
        raise validation(errors)


def update(session: Session, principal: Principal, activity: Activity, data: ActivityUpdate) -> Activity:
    _guard_editable(principal, activity, "edit")
    _check_fields(activity, data)
    sent = data.model_fields_set
    before = snapshot(activity)
    if data.matter_id is not None and data.matter_id != activity.matter_id:
        _open_matter(session, data.matter_id)
        activity.matter_id = data.matter_id
    if "user_id" in sent and data.user_id != activity.user_id:
        if data.user_id is not None:
            require_active(session, data.user_id, "body.user_id")
        activity.user_id = data.user_id
    if data.date is not None:
        activity.date = data.date
    if "description" in sent:
        activity.description = data.description
    if activity.kind == "time":
        _same_currency(activity, {f: getattr(data, f) for f in ("rate", "flat_fee") if f in sent})
        _set_time_money(
            activity,
            data.duration_seconds if "duration_seconds" in sent else activity.duration_seconds,
            (data.rate.amount if data.rate else None) if "rate" in sent else activity.rate_amount,
            (data.flat_fee.amount if data.flat_fee else None) if "flat_fee" in sent else activity.flat_amount,
            updating=True,
        )
        _check_fee_earner(activity)
    else:
        if "supplier_id" in sent and data.supplier_id != activity.supplier_id:
            if data.supplier_id is not None:
                _check_supplier(session, data.supplier_id)
            activity.supplier_id = data.supplier_id
        if "category" in sent:
            activity.category = data.category
        if data.amount is not None:
            _same_currency(activity, {"amount": data.amount})
            _set_expense_money(activity, data.amount.amount)
    changes = diff(before, snapshot(activity))
    if changes:
        activity.updated_at = utcnow()
        session.flush()
        record_event(session, "activity.updated", ENTITY, activity.id, changes)
    return activity


def delete(session: Session, principal: Principal, activity: Activity) -> None:
    """Hard delete; the activity.deleted event keeps every field as its old value."""
    _guard_editable(principal, activity, "delete")
    before = snapshot(activity)
    activity_id = activity.id
    repository.hard_delete(session, activity)
    record_event(session, "activity.deleted", ENTITY, activity_id, diff(before, {}))


def transition(
    session: Session,
    activity: Activity,
    action: str,
    *,
    reason: str | None = None,
    bill_reference: str | None = None,
) -> Activity:
    sources, target, event_type = TRANSITIONS[action]
    if activity.state not in sources:
        raise invalid_state(
            f"Cannot {action} this activity: it is {activity.state}; {action} moves "
            f"{' or '.join(sources)} to {target}.",
            activity.state,
        )
    before = snapshot(activity)
    now = utcnow()
    activity.state = target
    if action == "submit":
        activity.submitted_at = now
    elif action == "approve":
        activity.approved_at = now
    elif action == "reject":
        activity.submitted_at = None
        activity.approved_at = None
    elif action == "bill":
        activity.billed_at = now
        activity.bill_reference = bill_reference
    activity.updated_at = now
    session.flush()
    changes = diff(before, snapshot(activity))
    if reason is not None:
        changes["reason"] = {"old": None, "new": reason}
    record_event(session, event_type, ENTITY, activity.id, changes)
    return activity


# Reads --------------------------------------------------------------------------------------------


def totals(session: Session, filters: repository.Filters) -> TotalsOut:
    """Per-currency sums of the stored line totals (each already rounded), so a bill adds up."""
    rows = []
    for s in repository.sums_by_currency(session, filters):
        rows.append(
            CurrencyTotals(
                currency=s.currency,
                time=MoneyOut.of(s.time, s.currency),
                expenses=MoneyOut.of(s.expenses, s.currency),
                total=MoneyOut.of(s.time + s.expenses, s.currency),
                duration_seconds=s.duration_seconds,
                count=s.count,
            )
        )
    return TotalsOut(totals=rows)

"""Activities: time entries (``TimeEntry``) and expenses (``ExpenseEntry``; ``HardCostEntry`` and
``SoftCostEntry`` behave as expenses, and only a HardCostEntry takes ``reference`` and ``vendor``).

Money is ``Decimal`` and time integer seconds:

- TimeEntry: ``quantity`` is seconds (a whole, non-negative number; default 0). ``price`` is the hourly
  rate, by default the user's ``rate``. ``rounded_quantity`` rounds ``quantity`` UP to the account's
  increment, ``settings.activity_rounding_seconds`` (default 360: 6 minutes, a tenth of an hour; 0 turns
  rounding off; a seed document can set it). As Clio says, the rounded value makes the total:
  ``total = price * rounded_quantity / 3600``, rounded half-up to cents. ``quantity_in_hours`` and
  ``rounded_quantity_in_hours`` have 4 decimal places.
- Expenses: ``quantity`` is a number of units (default 1, fractions allowed, e.g. miles), ``price`` the
  amount of one unit, by default the expense category's ``rate`` (422 when there is neither);
  ``total = price * quantity`` to cents. ``quantity_in_hours`` and the rounded fields are null.
- ``non_billable``: the amount is reported in ``non_billable_total`` and ``total`` is 0.
- ``X-API-VERSION`` below 4.0.4: a TimeEntry's ``quantity`` and ``rounded_quantity`` are hours, in the
  request and the response (webhook deliveries always use seconds).
- An activity on a bill that is not void or deleted (``on_bill``; ``billed`` once the bill awaits
  payment or is paid) is locked: PATCH and DELETE are 422. Bills (bills.py) keep these flags in step.
- PATCH without ``price`` that changes a TimeEntry's matter, user or activity description resets the
  price from the rate hierarchy (here the user's rate: matter, client and activity description rates
  are not emulated); one that changes an expense's category takes the new category's rate, if it has one.
- The ``type`` of an activity cannot change (422). Timers and links to calendar entries,
  communications, notes, tasks and the like are not emulated (422 when sent).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import QueryParams

from casebridge.sandbox.clio import admin
from casebridge.sandbox.clio.app import Ctx, ctx_of
from casebridge.sandbox.clio.errors import bad_request, invalid
from casebridge.sandbox.clio.resource import Link, Resource
from casebridge.sandbox.clio.resources.common import (
    boolean,
    check_if_match,
    choice,
    day,
    no_content,
    number,
    reference,
    show,
    text,
)
from casebridge.sandbox.clio.resources.expense_categories import seed_decimal
from casebridge.sandbox.clio.state import Record, SandboxState

TIME = "TimeEntry"
EXPENSE_TYPES = ("ExpenseEntry", "HardCostEntry", "SoftCostEntry")
TYPES = (TIME, *EXPENSE_TYPES)
STATUSES = ("billed", "draft", "unbilled", "non_billable", "billable", "written_off")
TAX_SETTINGS = ("no_tax", "tax_1_only", "tax_2_only", "tax_1_and_tax_2")
ACTIVE_BILL_STATES = ("draft", "awaiting_approval", "awaiting_payment", "paid")
BILLED_STATES = ("awaiting_payment", "paid")
DEFAULT_ROUNDING = 360  # seconds: round up to 6-minute increments
CENT = Decimal("0.01")
HOUR_PLACES = Decimal("0.0001")
NOT_EMULATED = (
    "calendar_entry",
    "client_portal",
    "communication",
    "contact_note",
    "matter_note",
    "task",
    "text_message_conversation",
    "utbms_expense",
)

ACTIVITIES = Resource(
    "activities",
    "Activity",
    "Activity",
    nested={
        "matter": Link("matters", "matter_id"),
        "user": Link("users", "user_id"),
        "expense_category": Link("expense_categories", "expense_category_id"),
        "bill": Link("bills", "bill_id"),
        "vendor": Link("contacts", "vendor_id"),
        "activity_description": Link("activity_descriptions", "activity_description_id"),
    },
    search=("note",),
    orders=(
        "id",
        "date",
        "price",
        "total",
        "type",
        "note",
        "updated_at",
        "non_billable",
        "non_billable_total",
    ),
)

router = APIRouter()


# --- amounts -----------------------------------------------------------------------------------------


def rounded_seconds(state: SandboxState, seconds: int) -> int:
    step = int(state.settings.get("activity_rounding_seconds", DEFAULT_ROUNDING))
    return -(-seconds // step) * step if step > 0 else seconds


def _hours(seconds: int) -> Decimal:
    return (Decimal(seconds) / 3600).quantize(HOUR_PLACES, ROUND_HALF_UP)


def compute(state: SandboxState, record: Record) -> None:
    """The derived quantities and the totals, from type, quantity, price and non_billable."""
    price: Decimal = record.get("price") or Decimal(0)
    if record["type"] == TIME:
        seconds = int(record["quantity"])
        rounded = rounded_seconds(state, seconds)
        record["rounded_quantity"] = rounded
        record["quantity_in_hours"] = _hours(seconds)
        record["rounded_quantity_in_hours"] = _hours(rounded)
        amount = price * Decimal(rounded) / 3600
    else:
        record["rounded_quantity"] = None
        record["quantity_in_hours"] = None
        record["rounded_quantity_in_hours"] = None
        amount = price * Decimal(record["quantity"])
    amount = amount.quantize(CENT, ROUND_HALF_UP)
    zero = Decimal("0.00")
    record["total"], record["non_billable_total"] = (
        (zero, amount) if record["non_billable"] else (amount, zero)
    )


def default_price(state: SandboxState, record: Record) -> Decimal | None:
    """The rate hierarchy as far as the sandbox models it: a TimeEntry takes its user's rate, an
    expense its category's rate (None when it has none)."""
    if record["type"] == TIME:
        user = state.get("users", record["user_id"]) or {}
        rate = user.get("rate")
        return Decimal(str(rate)) if rate is not None else Decimal(0)
    category = (
        state.get("expense_categories", record["expense_category_id"])
        if record.get("expense_category_id")
        else None
    )
    if category is None or category.get("rate") is None:
        return None
    return Decimal(str(category["rate"]))


def active_bill(state: SandboxState, record: Record) -> Record | None:
    """The bill the activity is on, unless there is none or it is void or deleted."""
    ident = record.get("bill_id")
    bill = state.get("bills", ident) if ident is not None else None
    return bill if bill is not None and bill["state"] in ACTIVE_BILL_STATES else None


def _ensure_unlocked(state: SandboxState, record: Record, action: str) -> None:
    bill = active_bill(state, record)
    if bill is not None:
        raise invalid(
            f"This activity is on bill {bill['number']} ({bill['state']}) and cannot be {action}; "
            "void or delete the bill first"
        )


# --- X-API-VERSION below 4.0.4: hours ----------------------------------------------------------------


def hours_mode(ctx: Ctx) -> bool:
    version = ctx.request.headers.get("x-api-version")
    return version is not None and int(version.rsplit(".", 1)[1]) < 4  # the middleware vetted it


def _view(ctx: Ctx, record: Record) -> Record:
    """The record as this request's API version shows it."""
    if record["type"] != TIME or not hours_mode(ctx):
        return record
    return {
        **record,
        "quantity": _hours(int(record["quantity"])),
        "rounded_quantity": _hours(int(record["rounded_quantity"])),
    }


# --- requests ---------------------------------------------------------------------------------------


def _blank(kind: str, user_id: int) -> Record:
    return {
        "id": 0,
        "type": kind,
        "date": None,
        "quantity": 0 if kind == TIME else Decimal(1),
        "price": None,
        "note": None,
        "matter_id": None,
        "user_id": user_id,
        "expense_category_id": None,
        "activity_description_id": None,
        "vendor_id": None,
        "reference": None,
        "bill_id": None,
        "billed": False,
        "on_bill": False,
        "non_billable": False,
        "no_charge": False,
        "flat_rate": False,
        "contingency_fee": False,
        "quantity_redacted": False,
        "tax_setting": None,
    }


def _quantity(ctx: Ctx, record: Record, data: dict[str, Any]) -> None:
    value = number(data, "quantity")
    if value is None:
        record["quantity"] = 0 if record["type"] == TIME else Decimal(1)
        return
    if value < 0:
        raise invalid(f"quantity must not be negative; got {data['quantity']!r}")
    if record["type"] != TIME:
        record["quantity"] = value
    elif hours_mode(ctx):
        record["quantity"] = int((value * 3600).to_integral_value(ROUND_HALF_UP))
    elif value != value.to_integral_value():
        raise invalid(
            "quantity of a TimeEntry is a whole number of seconds (X-API-VERSION 4.0.4 and later); "
            f"got {data['quantity']!r}"
        )
    else:
        record["quantity"] = int(value)


def _rate_context_changed(record: Record, current: Record) -> bool:
    if record["type"] == TIME:
        keys: tuple[str, ...] = ("matter_id", "user_id", "activity_description_id")
    else:
        keys = ("expense_category_id",)
    return any(record.get(k) != current.get(k) for k in keys)


def _apply(ctx: Ctx, record: Record, data: dict[str, Any], current: Record | None) -> None:
    creating = current is None
    kind = record["type"]
    if not creating and "type" in data:
        wanted = choice(data, "type", TYPES, required=True)
        if wanted != kind:
            raise invalid(
                f"type cannot be changed ({kind} to {wanted}); delete the activity and create another"
            )
    for key in NOT_EMULATED:
        if data.get(key) is not None:
            raise invalid(f"{key} is not emulated by the sandbox")
    if boolean(data, "start_timer"):
        raise invalid("start_timer: timers are not emulated by the sandbox")
    if "date" in data or creating:
        record["date"] = day(data, "date", required=True)
    if "note" in data:
        record["note"] = text(data, "note")
    if "matter" in data:
        record["matter_id"] = reference(ctx, data, "matter", "matters", "Matter")
    if "user" in data:
        record["user_id"] = reference(ctx, data, "user", "users", "User") or ctx.user_id
    if "activity_description" in data:
        record["activity_description_id"] = reference(
            ctx, data, "activity_description", "activity_descriptions", "ActivityDescription"
        )
    if "expense_category" in data:
        if kind == TIME and data["expense_category"] is not None:
            raise invalid("expense_category is only valid for expense entries, not a TimeEntry")
        record["expense_category_id"] = reference(
            ctx, data, "expense_category", "expense_categories", "ExpenseCategory"
        )
    if "vendor" in data:
        if kind != "HardCostEntry" and data["vendor"] is not None:
            raise invalid("vendor is only valid for a HardCostEntry")
        record["vendor_id"] = reference(ctx, data, "vendor", "contacts", "Vendor")
    if "reference" in data:
        if kind != "HardCostEntry" and data["reference"] is not None:
            raise invalid("reference is only valid for a HardCostEntry")
        record["reference"] = text(data, "reference")
    for key in ("non_billable", "no_charge"):
        if key in data:
            record[key] = bool(boolean(data, key))
    if "tax_setting" in data:
        record["tax_setting"] = choice(data, "tax_setting", TAX_SETTINGS)
    if "quantity" in data or creating:
        _quantity(ctx, record, data)
    price = number(data, "price", minimum=Decimal(0))
    if price is not None:
        record["price"] = price
    elif current is None or _rate_context_changed(record, current):
        fallback = default_price(ctx.state, record)
        if fallback is not None:
            record["price"] = fallback
        elif current is None:
            raise invalid(
                f"price can't be blank for an {kind}: send price, or an expense_category that has a rate"
            )
    compute(ctx.state, record)


def _id_filter(rows: list[Record], q: QueryParams, param: str, key: str) -> list[Record]:
    raw = q.get(param)
    if raw is None or raw == "":
        return rows
    if raw == "null":
        return [r for r in rows if r.get(key) is None]
    try:
        wanted = int(raw)
    except ValueError:
        raise bad_request(f"{param} must be an integer or null; got {raw!r}") from None
    return [r for r in rows if r.get(key) == wanted]


def _date_param(q: QueryParams, param: str) -> str | None:
    raw = q.get(param)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise bad_request(f"{param} must be a date (YYYY-MM-DD); got {raw!r}") from None


def _has_status(record: Record, status: str) -> bool:
    if status == "billed":
        return bool(record["billed"])
    if status == "draft":
        return bool(record["on_bill"]) and not record["billed"]
    if status == "unbilled":
        return not record["on_bill"] and not record["non_billable"]
    if status == "non_billable":
        return bool(record["non_billable"])
    if status == "billable":
        return not record["non_billable"]
    return False  # written_off: write-offs are not emulated


@router.get("/activities")
def list_activities(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    q = request.query_params
    rows = ctx.state.all("activities")
    if q.get("type"):
        if q["type"] not in TYPES:
            raise bad_request(f"type must be one of {', '.join(TYPES)}; got {q['type']!r}")
        rows = [a for a in rows if a["type"] == q["type"]]
    for param, key in (
        ("matter_id", "matter_id"),
        ("user_id", "user_id"),
        ("expense_category_id", "expense_category_id"),
        ("activity_description_id", "activity_description_id"),
    ):
        rows = _id_filter(rows, q, param, key)
    start, end = _date_param(q, "start_date"), _date_param(q, "end_date")
    if start is not None:
        rows = [a for a in rows if a["date"] >= start]
    if end is not None:
        rows = [a for a in rows if a["date"] <= end]
    if q.get("status"):
        if q["status"] not in STATUSES:
            raise bad_request(f"status must be one of {', '.join(STATUSES)}; got {q['status']!r}")
        rows = [a for a in rows if _has_status(a, q["status"])]
    if q.get("flat_rate") in ("true", "false"):
        rows = [a for a in rows if a["flat_rate"] == (q["flat_rate"] == "true")]
    return JSONResponse(ACTIVITIES.list(ctx, [_view(ctx, a) for a in rows]))


@router.post("/activities")
async def create_activity(request: Request) -> Response:
    ctx = ctx_of(request)
    ACTIVITIES.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    kind = choice(data, "type", TYPES, required=True)
    assert kind is not None
    with ctx.state.lock:
        record = _blank(kind, ctx.user_id)
        _apply(ctx, record, data, None)
        record["id"] = ctx.state.next_id("activities")
        ctx.state.put("activities", ctx.state.stamp(record, created=True))
        ctx.state.changed("activities", "created", record)
    return show(ctx, ACTIVITIES, _view(ctx, record), status=201)


@router.get("/activities/{activity_id}")
def show_activity(request: Request, activity_id: int) -> Response:
    ctx = ctx_of(request)
    return show(ctx, ACTIVITIES, _view(ctx, ACTIVITIES.find(ctx, activity_id)))


@router.patch("/activities/{activity_id}")
async def update_activity(request: Request, activity_id: int) -> Response:
    ctx = ctx_of(request)
    ACTIVITIES.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        current = ACTIVITIES.find(ctx, activity_id)
        check_if_match(ctx, current)
        _ensure_unlocked(ctx.state, current, "changed")
        record = dict(current)
        _apply(ctx, record, data, current)
        ctx.state.put("activities", ctx.state.stamp(record))
        ctx.state.changed("activities", "updated", record, current)
    return show(ctx, ACTIVITIES, _view(ctx, record))


@router.delete("/activities/{activity_id}")
def delete_activity(request: Request, activity_id: int) -> Response:
    ctx = ctx_of(request)
    with ctx.state.lock:
        record = ACTIVITIES.find(ctx, activity_id)
        _ensure_unlocked(ctx.state, record, "deleted")
        ctx.state.remove("activities", activity_id)
        ctx.state.changed("activities", "deleted", record)
    return no_content()


# --- seeding ---------------------------------------------------------------------------------------


def seed_activity(state: SandboxState, raw: dict[str, Any]) -> Record:
    """A seed record such as ``{"type": "TimeEntry", "date": "2026-01-05", "quantity": 5400,
    "matter_id": 1, "note": "Drafting"}`` (``quantity`` in seconds for time, units for expenses;
    ``price`` defaults as over the API, an expense's from its category, which a seed document loads
    first; ``user_id`` defaults to the sandbox user)."""
    where = f"activities[{raw['id']}]"
    kind = raw.get("type")
    if kind not in TYPES:
        raise ValueError(f"{where}: type must be one of {', '.join(TYPES)}")
    record = _blank(kind, int(raw.get("user_id") or state.settings.get("sandbox_user_id", 1)))
    record["id"] = raw["id"]
    try:
        record["date"] = date.fromisoformat(str(raw.get("date"))).isoformat()
    except ValueError:
        raise ValueError(f"{where}: date (YYYY-MM-DD) is required") from None
    for key, table in (
        ("matter_id", "matters"),
        ("user_id", "users"),
        ("expense_category_id", None),
        ("vendor_id", "contacts"),
    ):
        value = raw.get(key, record[key])
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: {key} must be an integer")
        if table is not None and state.get(table, value) is None:
            raise ValueError(f"{where}: {key} {value} does not exist")
        record[key] = value
    if raw.get("quantity") is not None:
        quantity = seed_decimal(raw["quantity"], f"{where}.quantity")
        if kind == TIME and quantity != quantity.to_integral_value():
            raise ValueError(f"{where}: quantity of a TimeEntry is a whole number of seconds")
        record["quantity"] = int(quantity) if kind == TIME else quantity
    for key in ("non_billable", "no_charge"):
        record[key] = bool(raw.get(key, False))
    for key in ("note", "reference", "tax_setting"):
        if raw.get(key) is not None:
            record[key] = str(raw[key])
    if raw.get("price") is not None:
        record["price"] = seed_decimal(raw["price"], f"{where}.price")
    else:
        record["price"] = default_price(state, record)
        if record["price"] is None:
            raise ValueError(f"{where}: price is required (no expense category rate to default from)")
    compute(state, record)
    return state.stamp(record, created=True)


admin.SEEDERS["activities"] = seed_activity

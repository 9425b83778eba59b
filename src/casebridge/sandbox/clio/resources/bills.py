"""Bills. Clio's API cannot create one, so bills come from seed documents (``POST /_sandbox/seed``)::

    {"bills": [{"number": "1001", "matter_ids": [1], "activity_ids": [1, 2], "issued_at": "2026-01-31",
                "due_at": "2026-03-02", "state": "awaiting_payment", "paid": "0"}]}

A seeded bill's ``sub_total`` is the sum of its activities' totals (or, for a bill without activities,
the seed's ``total``); ``tax_rate``/``secondary_tax_rate`` (percent, default 0) add ``tax_sum`` and
``secondary_tax_sum``; ``total`` and ``due`` include tax (interest and discounts are not emulated);
``balance`` is ``total - paid``, and 0 once the bill is void or deleted. Defaults: state ``draft``,
``issued_at`` today, ``due_at`` 30 days later, ``number`` the id, ``matter_ids`` the activities'
matters, ``client_id`` the first matter's client, ``type`` ``MatterBill`` (``ClientBill`` with several
matters), ``kind`` ``revenue_kind`` (``trust_kind`` for a trust bill). A bill seeded as ``paid`` without
``paid`` is paid in full.

States move only along ``available_state_transitions`` (an array):

- draft -> awaiting_approval | awaiting_payment | deleted; awaiting_approval -> awaiting_payment | deleted;
  awaiting_payment -> paid | void; paid, void and deleted are final. A bill with payments (``paid > 0``)
  can be neither voided nor deleted.
- PATCH ``state: "paid"`` records the balance as paid (``paid = total``, ``paid_at`` now).
- DELETE moves a draft or awaiting_approval bill to ``deleted`` (a ``deleted`` event) and an
  awaiting_payment one to ``void`` (an ``updated`` event); anything else, or a bill with payments, is 422.

The activities on a bill are ``on_bill`` (and ``billed`` once it awaits payment or is paid) and locked;
voiding or deleting the bill releases them (``bill`` null, flags false). Lists leave out deleted bills
unless asked for ``state=deleted``; a deleted bill can still be read by id. Bill numbers are unique.
"""

from __future__ import annotations

import operator
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio import admin
from casebridge.sandbox.clio.app import Ctx, ctx_of
from casebridge.sandbox.clio.errors import bad_request, invalid
from casebridge.sandbox.clio.resource import Link, Resource
from casebridge.sandbox.clio.resources.activities import (
    ACTIVE_BILL_STATES,
    BILLED_STATES,
    TIME,
    active_bill,
)
from casebridge.sandbox.clio.resources.common import (
    check_if_match,
    choice,
    day,
    no_content,
    number,
    show,
    text,
)
from casebridge.sandbox.clio.resources.expense_categories import seed_decimal
from casebridge.sandbox.clio.state import Record, SandboxState, iso

STATES = ("draft", "awaiting_approval", "awaiting_payment", "paid", "void", "deleted")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("awaiting_approval", "awaiting_payment", "deleted"),
    "awaiting_approval": ("awaiting_payment", "deleted"),
    "awaiting_payment": ("paid", "void"),
    "paid": (),
    "void": (),
    "deleted": (),
}
ON_DELETE = {"draft": "deleted", "awaiting_approval": "deleted", "awaiting_payment": "void"}
KINDS = (
    "revenue_kind",
    "summary_kind",
    "trust_kind",
    "aggregate_all",
    "aggregate_split",
    "aggregate_services",
    "aggregate_expenses",
)
BILL_TYPES = ("MatterBill", "ClientBill")
NOT_EMULATED = ("use_grace_period", "discount", "interest", "bill_theme", "currency_id")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def transitions(record: Record) -> list[str]:
    allowed = TRANSITIONS[record["state"]]
    if record["paid"] > 0:
        allowed = tuple(s for s in allowed if s not in ("void", "deleted"))
    return list(allowed)


def _matters(state: SandboxState, record: Record) -> list[Record]:
    found = (state.get("matters", ident) for ident in record.get("matter_ids") or [])
    return [m for m in found if m is not None]


def _hidden(record: Record, params: dict[str, str]) -> bool:
    return bool(record["state"] == "deleted" and params.get("state") != "deleted")


BILLS = Resource(
    "bills",
    "Bill",
    "Bill",
    nested={
        "client": Link("contacts", "client_id"),
        "user": Link("users", "user_id"),
        "matters": _matters,
        "available_state_transitions": lambda _, record: transitions(record),
        "can_update": lambda _, record: record["state"] in ("draft", "awaiting_approval"),
    },
    search=("number",),
    orders=("id", "due_at", "issued_at", "paid_at", "last_sent_at", "balance", "number"),
    hidden=_hidden,
)

router = APIRouter()


def amounts(bill: Record) -> None:
    """Tax, total, due and balance from ``sub_total``, the tax rates, ``paid`` and the state."""
    sub_total: Decimal = bill["sub_total"]
    tax = (sub_total * bill["tax_rate"] / 100).quantize(CENT, ROUND_HALF_UP)
    secondary = (sub_total * bill["secondary_tax_rate"] / 100).quantize(CENT, ROUND_HALF_UP)
    total = sub_total + tax + secondary
    bill.update(tax_sum=tax, secondary_tax_sum=secondary, total_tax=tax + secondary, total=total, due=total)
    bill["balance"] = ZERO if bill["state"] in ("void", "deleted") else total - bill["paid"]


def sync_activities(state: SandboxState, bill: Record, *, notify: bool) -> None:
    """Bring the flags of the bill's activities in line with its state; a void or deleted bill releases
    them. Each activity that changes gets a new etag (and an ``updated`` event when ``notify``)."""
    active = bill["state"] in ACTIVE_BILL_STATES
    for current in state.all("activities"):
        if current.get("bill_id") != bill["id"]:
            continue
        wanted = {
            "bill_id": bill["id"] if active else None,
            "on_bill": active,
            "billed": active and bill["state"] in BILLED_STATES,
        }
        if all(current.get(k) == v for k, v in wanted.items()):
            continue
        record = state.stamp({**current, **wanted})
        state.put("activities", record)
        if notify:
            state.changed("activities", "updated", record, current)


def _number_taken(state: SandboxState, value: str, ident: int) -> bool:
    return any(
        b["id"] != ident and b["state"] != "deleted" and b.get("number") == value for b in state.all("bills")
    )


def _check_dates(record: Record) -> None:
    if record.get("issued_at") and record.get("due_at") and record["due_at"] < record["issued_at"]:
        raise invalid(f"due_at ({record['due_at']}) must not be before issued_at ({record['issued_at']})")


def _overdue(record: Record, today: str) -> bool:
    return bool(
        record["state"] == "awaiting_payment"
        and record.get("due_at")
        and record["due_at"] < today
        and record["balance"] > 0
    )


def _date_param(raw: str, param: str) -> str:
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise bad_request(f"{param} must be a date (YYYY-MM-DD); got {raw!r}") from None


def _int_param(raw: str, param: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{param} must be an integer; got {raw!r}") from None


@router.get("/bills")
def list_bills(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    q = request.query_params
    rows = ctx.state.all("bills")
    if q.get("state"):
        if q["state"] not in STATES:
            raise bad_request(f"state must be one of {', '.join(STATES)}; got {q['state']!r}")
        rows = [b for b in rows if b["state"] == q["state"]]
    if q.get("matter_id"):
        matter_id = _int_param(q["matter_id"], "matter_id")
        rows = [b for b in rows if matter_id in (b.get("matter_ids") or [])]
    if q.get("client_id"):
        client_id = _int_param(q["client_id"], "client_id")
        rows = [b for b in rows if b.get("client_id") == client_id]
    for param in ("responsible_attorney_id", "originating_attorney_id"):
        if q.get(param):
            user_id = _int_param(q[param], param)
            rows = [b for b in rows if any(m.get(param) == user_id for m in _matters(ctx.state, b))]
    for param, key, keep in (
        ("issued_after", "issued_at", operator.gt),
        ("issued_before", "issued_at", operator.lt),
        ("due_after", "due_at", operator.gt),
        ("due_before", "due_at", operator.lt),
        ("due_at", "due_at", operator.eq),
    ):
        if q.get(param):
            on = _date_param(q[param], param)
            rows = [b for b in rows if b.get(key) and keep(b[key], on)]
    if q.get("type"):
        if q["type"] not in ("revenue", "trust"):
            raise bad_request(f"type must be revenue or trust; got {q['type']!r}")
        trust = q["type"] == "trust"
        rows = [b for b in rows if (b["kind"] == "trust_kind") == trust]
    if q.get("status") and q["status"] not in ("all", "overdue"):
        raise bad_request(f"status must be all or overdue; got {q['status']!r}")
    if q.get("overdue_only") == "true" or q.get("status") == "overdue":
        today = ctx.state.clock.now().date().isoformat()
        rows = [b for b in rows if _overdue(b, today)]
    return JSONResponse(BILLS.list(ctx, rows))


@router.get("/bills/{bill_id}")
def show_bill(request: Request, bill_id: int) -> Response:
    ctx = ctx_of(request)
    return show(ctx, BILLS, BILLS.find(ctx, bill_id, include_hidden=True))


def _apply(ctx: Ctx, record: Record, data: dict[str, Any]) -> None:
    for key in NOT_EMULATED:
        if data.get(key) is not None:
            raise invalid(f"{key} is not emulated by the sandbox")
    if "number" in data:
        value = text(data, "number", required=True, label="number")
        assert value is not None
        if _number_taken(ctx.state, value, record["id"]):
            raise invalid(f"number has already been taken: another bill is numbered {value!r}")
        record["number"] = value
    for key in ("subject", "memo", "purchase_order"):
        if key in data:
            record[key] = text(data, key)
    for key in ("issued_at", "due_at"):
        if key in data:
            record[key] = day(data, key)
    _check_dates(record)
    for key in ("tax_rate", "secondary_tax_rate"):
        if key in data:
            if record["state"] not in ("draft", "awaiting_approval", "awaiting_payment"):
                raise invalid(f"{key} cannot be changed on a {record['state']} bill")
            record[key] = number(data, key, minimum=Decimal(0)) or Decimal(0)
    amounts(record)
    if "state" in data:
        wanted = choice(data, "state", STATES, required=True)
        assert wanted is not None
        if wanted != record["state"]:
            allowed = transitions(record)
            if wanted not in allowed:
                article = "An" if record["state"][0] in "aeiou" else "A"
                raise invalid(
                    f"{article} {record['state']} bill cannot move to {wanted}; "
                    f"allowed: {', '.join(allowed) if allowed else 'none'}"
                )
            record["state"] = wanted
            if wanted == "paid":
                record["paid"] = record["total"]
                record["paid_at"] = iso(ctx.state.clock.now())
            amounts(record)


@router.patch("/bills/{bill_id}")
async def update_bill(request: Request, bill_id: int) -> Response:
    ctx = ctx_of(request)
    BILLS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        current = BILLS.find(ctx, bill_id, include_hidden=True)
        check_if_match(ctx, current)
        if current["state"] in ("void", "deleted"):
            raise invalid(f"This bill is {current['state']} and cannot be changed")
        record = dict(current)
        _apply(ctx, record, data)
        ctx.state.put("bills", ctx.state.stamp(record))
        ctx.state.changed("bills", "updated", record, current)
        if record["state"] != current["state"]:
            sync_activities(ctx.state, record, notify=True)
    return show(ctx, BILLS, record)


@router.delete("/bills/{bill_id}")
def delete_bill(request: Request, bill_id: int) -> Response:
    ctx = ctx_of(request)
    with ctx.state.lock:
        current = BILLS.find(ctx, bill_id, include_hidden=True)
        if current["paid"] > 0:
            raise invalid(f"This bill has payments ({current['paid']} paid) and cannot be deleted or voided")
        target = ON_DELETE.get(current["state"])
        if target is None:
            raise invalid(
                "Only draft, awaiting_approval and awaiting_payment bills can be deleted or voided; "
                f"this bill is {current['state']}"
            )
        record = {**current, "state": target}
        amounts(record)
        ctx.state.put("bills", ctx.state.stamp(record))
        ctx.state.changed("bills", "deleted" if target == "deleted" else "updated", record, current)
        sync_activities(ctx.state, record, notify=True)
    return no_content()


# --- seeding ---------------------------------------------------------------------------------------


def _seed_ids(raw: dict[str, Any], key: str, where: str) -> list[int]:
    value = raw.get(key) or []
    if not isinstance(value, list) or any(isinstance(i, bool) or not isinstance(i, int) for i in value):
        raise ValueError(f"{where}: {key} must be an array of integer ids")
    return list(dict.fromkeys(value))


def _seed_day(raw: dict[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValueError(f"{where}: {key} must be a date (YYYY-MM-DD); got {value!r}") from None


def seed_bill(state: SandboxState, raw: dict[str, Any]) -> Record:
    """Turn a seed record into a stored bill and put its activities on it (see the module's doc)."""
    ident = int(raw["id"])
    where = f"bills[{ident}]"
    bill_state = raw.get("state", "draft")
    if bill_state not in STATES:
        raise ValueError(f"{where}: state must be one of {', '.join(STATES)}")
    activities: list[Record] = []
    for activity_id in _seed_ids(raw, "activity_ids", where):
        activity = state.get("activities", activity_id)
        if activity is None:
            raise ValueError(f"{where}: activity {activity_id} does not exist")
        other = active_bill(state, activity)
        if other is not None:
            raise ValueError(f"{where}: activity {activity_id} is already on bill {other['number']}")
        activities.append(activity)
    matter_ids = _seed_ids(raw, "matter_ids", where) or list(
        dict.fromkeys(a["matter_id"] for a in activities if a.get("matter_id") is not None)
    )
    if not matter_ids:
        raise ValueError(f"{where}: a bill needs matter_ids (or activities on matters)")
    for matter_id in matter_ids:
        if state.get("matters", matter_id) is None:
            raise ValueError(f"{where}: matter {matter_id} does not exist")
    for activity in activities:
        if activity.get("matter_id") is not None and activity["matter_id"] not in matter_ids:
            raise ValueError(
                f"{where}: activity {activity['id']} is on matter {activity['matter_id']}, not one of {matter_ids}"
            )
    first_matter = state.get("matters", matter_ids[0]) or {}
    client_id = raw.get("client_id", first_matter.get("client_id"))
    if client_id is not None and state.get("contacts", client_id) is None:
        raise ValueError(f"{where}: client {client_id} does not exist")
    if raw.get("total") is not None:
        if activities:
            raise ValueError(f"{where}: give activity_ids or total, not both (the total is computed)")
        sub_total = seed_decimal(raw["total"], f"{where}.total")
    else:
        sub_total = sum((a["total"] for a in activities), ZERO)
    number_ = str(raw.get("number", ident))
    if _number_taken(state, number_, ident):
        raise ValueError(f"{where}: bill number {number_!r} is already taken")
    bill_type = raw.get("type") or ("MatterBill" if len(matter_ids) == 1 else "ClientBill")
    kind = raw.get("kind", "revenue_kind")
    if bill_type not in BILL_TYPES or kind not in KINDS:
        raise ValueError(f"{where}: type must be one of {BILL_TYPES} and kind one of {KINDS}")
    today = state.clock.now().date()
    issued_at = _seed_day(raw, "issued_at", where) or today.isoformat()
    due_at = (
        _seed_day(raw, "due_at", where) or (date.fromisoformat(issued_at) + timedelta(days=30)).isoformat()
    )
    dates = sorted(a["date"] for a in activities)
    record: Record = {
        "id": ident,
        "number": number_,
        "type": bill_type,
        "kind": kind,
        "state": bill_state,
        "issued_at": issued_at,
        "due_at": due_at,
        "start_at": _seed_day(raw, "start_at", where) or (dates[0] if dates else None),
        "end_at": _seed_day(raw, "end_at", where) or (dates[-1] if dates else None),
        "subject": raw.get("subject"),
        "memo": raw.get("memo"),
        "purchase_order": raw.get("purchase_order"),
        "tax_rate": seed_decimal(raw.get("tax_rate", 0), f"{where}.tax_rate"),
        "secondary_tax_rate": seed_decimal(raw.get("secondary_tax_rate", 0), f"{where}.secondary_tax_rate"),
        "sub_total": sub_total,
        "services_sub_total": sum((a["total"] for a in activities if a["type"] == TIME), ZERO),
        "paid": ZERO,
        "paid_at": raw.get("paid_at"),
        "pending": ZERO,
        "credits_issued": ZERO,
        "shared": False,
        "last_sent_at": raw.get("last_sent_at"),
        "client_id": client_id,
        "user_id": int(raw.get("user_id") or state.settings.get("sandbox_user_id", 1)),
        "matter_ids": matter_ids,
    }
    if due_at < issued_at:
        raise ValueError(f"{where}: due_at ({due_at}) must not be before issued_at ({issued_at})")
    amounts(record)
    if raw.get("paid") is not None:
        record["paid"] = seed_decimal(raw["paid"], f"{where}.paid")
    elif bill_state == "paid":
        record["paid"] = record["total"]
    if record["paid"] > record["total"]:
        raise ValueError(f"{where}: paid ({record['paid']}) is more than the total ({record['total']})")
    if record["paid"] > 0 and record["paid_at"] is None:
        record["paid_at"] = iso(state.clock.now())
    amounts(record)
    state.stamp(record, created=True)
    active = bill_state in ACTIVE_BILL_STATES
    for activity in activities:
        state.put(
            "activities",
            state.stamp(
                {
                    **activity,
                    "bill_id": ident if active else None,
                    "on_bill": active,
                    "billed": active and bill_state in BILLED_STATES,
                }
            ),
        )
    return record


admin.SEEDERS["bills"] = seed_bill

"""Expense categories: a name, a ``rate`` (the default price of an expense entry in the category) and an
``entry_type`` (``hard_cost|soft_cost|unassociated``, default ``unassociated``).

Names are unique (case-insensitive). A category that an activity uses cannot be deleted (422), as a
contact that is a matter's client cannot. ``groups`` and ``utbms_code`` are not emulated (422 when sent
with content).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio import admin
from casebridge.sandbox.clio.app import Ctx, ctx_of
from casebridge.sandbox.clio.errors import bad_request, invalid
from casebridge.sandbox.clio.resource import Resource
from casebridge.sandbox.clio.resources.common import check_if_match, choice, no_content, number, show, text
from casebridge.sandbox.clio.state import Record, SandboxState

ENTRY_TYPES = ("hard_cost", "soft_cost", "unassociated")

EXPENSE_CATEGORIES = Resource(
    "expense_categories",
    "ExpenseCategory",
    "ExpenseCategory",
    search=("name",),
    orders=("id", "name", "rate", "entry_type"),
)

router = APIRouter()


def _blank() -> Record:
    return {
        "id": 0,
        "name": None,
        "rate": None,
        "entry_type": "unassociated",
        "tax_setting": None,
        "accessible_to_user": True,
        "xero_expense_code": None,
    }


def _unique_name(state: SandboxState, name: str, ident: int) -> None:
    taken = any(
        c["id"] != ident and str(c.get("name") or "").lower() == name.lower()
        for c in state.all("expense_categories")
    )
    if taken:
        raise invalid(f"Name has already been taken: an expense category named {name!r} exists")


def _apply(ctx: Ctx, record: Record, data: dict[str, Any], *, creating: bool) -> None:
    if "name" in data or creating:
        name = text(data, "name", required=True, label="Name")
        assert name is not None
        record["name"] = name.strip()
        _unique_name(ctx.state, record["name"], record["id"])
    if "rate" in data:
        record["rate"] = number(data, "rate", minimum=Decimal(0))
    if "entry_type" in data:
        record["entry_type"] = choice(data, "entry_type", ENTRY_TYPES, required=True)
    for key in ("groups", "utbms_code"):
        if data.get(key):
            raise invalid(f"{key} is not emulated by the sandbox")


@router.get("/expense_categories")
def list_expense_categories(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    q = request.query_params
    rows = ctx.state.all("expense_categories")
    if q.get("entry_type"):
        if q["entry_type"] not in ENTRY_TYPES:
            raise bad_request(f"entry_type must be one of {', '.join(ENTRY_TYPES)}; got {q['entry_type']!r}")
        rows = [c for c in rows if c["entry_type"] == q["entry_type"]]
    return JSONResponse(EXPENSE_CATEGORIES.list(ctx, rows))


@router.post("/expense_categories")
async def create_expense_category(request: Request) -> Response:
    ctx = ctx_of(request)
    EXPENSE_CATEGORIES.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        record = _blank()
        _apply(ctx, record, data, creating=True)
        record["id"] = ctx.state.next_id("expense_categories")
        ctx.state.put("expense_categories", ctx.state.stamp(record, created=True))
        ctx.state.changed("expense_categories", "created", record)
    return show(ctx, EXPENSE_CATEGORIES, record, status=201)


@router.get("/expense_categories/{category_id}")
def show_expense_category(request: Request, category_id: int) -> Response:
    ctx = ctx_of(request)
    return show(ctx, EXPENSE_CATEGORIES, EXPENSE_CATEGORIES.find(ctx, category_id))


@router.patch("/expense_categories/{category_id}")
async def update_expense_category(request: Request, category_id: int) -> Response:
    ctx = ctx_of(request)
    EXPENSE_CATEGORIES.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        current = EXPENSE_CATEGORIES.find(ctx, category_id)
        check_if_match(ctx, current)
        record = dict(current)
        _apply(ctx, record, data, creating=False)
        ctx.state.put("expense_categories", ctx.state.stamp(record))
        ctx.state.changed("expense_categories", "updated", record, current)
    return show(ctx, EXPENSE_CATEGORIES, record)


@router.delete("/expense_categories/{category_id}")
def delete_expense_category(request: Request, category_id: int) -> Response:
    ctx = ctx_of(request)
    with ctx.state.lock:
        record = EXPENSE_CATEGORIES.find(ctx, category_id)
        used = sum(1 for a in ctx.state.all("activities") if a.get("expense_category_id") == category_id)
        if used:
            raise invalid(
                f"This expense category is used by {used} activit{'y' if used == 1 else 'ies'} "
                "and cannot be deleted"
            )
        ctx.state.remove("expense_categories", category_id)
        ctx.state.changed("expense_categories", "deleted", record)
    return no_content()


# --- seeding ---------------------------------------------------------------------------------------


def seed_expense_category(state: SandboxState, raw: dict[str, Any]) -> Record:
    """A seed record ``{"name": "Photocopies", "rate": "0.25", "entry_type": "soft_cost"}``."""
    record = _blank()
    record["id"] = raw["id"]
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"expense_categories[{raw['id']}]: name is required")
    record["name"] = name.strip()
    if raw.get("rate") is not None:
        record["rate"] = seed_decimal(raw["rate"], f"expense_categories[{raw['id']}].rate")
    entry_type = raw.get("entry_type", "unassociated")
    if entry_type not in ENTRY_TYPES:
        raise ValueError(
            f"expense_categories[{raw['id']}]: entry_type must be one of {', '.join(ENTRY_TYPES)}"
        )
    record["entry_type"] = entry_type
    for key in ("tax_setting", "xero_expense_code"):
        if key in raw:
            record[key] = raw[key]
    return state.stamp(record, created=True)


def seed_decimal(value: Any, where: str) -> Decimal:
    """A non-negative amount in a seed record (a ValueError, which the admin API answers with 422)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where} must be a number")
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        raise ValueError(f"{where} must be a number; got {value!r}") from None
    if not result.is_finite() or result < 0:
        raise ValueError(f"{where} must be a number of at least 0; got {value!r}")
    return result


admin.SEEDERS["expense_categories"] = seed_expense_category

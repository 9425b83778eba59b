"""Matters: numbering by the account's scheme (NOTES.md §4), status casing, client required.

Requests use lower-case status (``open|pending|closed``), responses capitalised (``Open``). ``number``
is firm-wide; ``display_number`` follows ``settings.matter_numbering``:

- ``default``: ``00001-Smith`` (number, then the client's last name, or a company's name);
- ``number``: ``00001``; ``year``: ``2026-00001``; ``year_month``: ``2026-11-00001`` (year and month of
  the open date, else the pending, close or creation date);
- ``manual``: the client writes ``display_number``; under every other scheme sending it is a 422.

``reset_matter_number: true`` (create or update) regenerates ``display_number`` from the current scheme.
``practice_area{id}`` refers to a practice area (``null`` clears it).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio.app import Ctx, ctx_of
from casebridge.sandbox.clio.errors import invalid
from casebridge.sandbox.clio.resource import Link, Resource
from casebridge.sandbox.clio.resources.common import (
    boolean,
    check_if_match,
    choice,
    day,
    no_content,
    reference,
    show,
    text,
)
from casebridge.sandbox.clio.state import Record, SandboxState

STATUSES = ("open", "pending", "closed")
SCHEMES = ("default", "number", "year", "year_month", "manual")

MATTERS = Resource(
    "matters",
    "Matter",
    "Matter",
    nested={
        "client": Link("contacts", "client_id"),
        "responsible_attorney": Link("users", "responsible_attorney_id"),
        "originating_attorney": Link("users", "originating_attorney_id"),
        "user": Link("users", "user_id"),
        "folder": Link("folders", "folder_id"),
        "practice_area": Link("practice_areas", "practice_area_id"),
    },
    search=("display_number", "description", "client_reference"),
    orders=("id", "display_number", "open_date", "close_date", "pending_date", "created_at", "updated_at"),
)

router = APIRouter()


def _summary_name(client: Record | None) -> str:
    if client is None:
        return ""
    if client["type"] == "Person":
        return str(client.get("last_name") or client.get("first_name") or client.get("name") or "")
    return str(client.get("name") or "")


def display_number(state: SandboxState, record: Record) -> str | None:
    scheme = state.settings["matter_numbering"]
    digits = int(state.settings.get("matter_number_digits", 5))
    padded = str(record["number"]).zfill(digits)
    when = record.get("open_date") or record.get("pending_date") or record.get("close_date")
    on = date.fromisoformat(when) if when else date.fromisoformat(record["created_at"][:10])
    if scheme == "default":
        name = _summary_name(state.get("contacts", record["client_id"]))
        return f"{padded}-{name}" if name else padded
    if scheme == "number":
        return padded
    if scheme == "year":
        return f"{on:%Y}-{padded}"
    if scheme == "year_month":
        return f"{on:%Y-%m}-{padded}"
    return record.get("display_number")  # manual


def _status(record: Record, status: str, today: str) -> None:
    record["status"] = status.capitalize()
    key = {"open": "open_date", "pending": "pending_date", "closed": "close_date"}[status]
    if not record.get(key):
        record[key] = today


def _apply(ctx: Ctx, record: Record, data: dict[str, Any], *, creating: bool) -> bool:
    """Apply ``data``; returns whether ``display_number`` must be (re)generated."""
    if "description" in data or creating:
        record["description"] = text(data, "description", required=True, label="Description")
    if "client" in data or creating:
        record["client_id"] = reference(ctx, data, "client", "contacts", "Client", required=True)
    for key in ("location", "client_reference"):
        if key in data:
            record[key] = text(data, key)
    for key in ("open_date", "close_date", "pending_date"):
        if key in data:
            record[key] = day(data, key)
    if "billable" in data:
        record["billable"] = boolean(data, "billable")
    if "practice_area" in data:
        record["practice_area_id"] = reference(ctx, data, "practice_area", "practice_areas", "Practice area")
    for key in ("responsible_attorney", "originating_attorney"):
        if key in data:
            record[f"{key}_id"] = reference(ctx, data, key, "users", key.replace("_", " ").capitalize())
    if "status" in data:
        status = choice(data, "status", STATUSES, required=True)
        assert status is not None
        _status(record, status, ctx.state.clock.now().date().isoformat())
    manual = ctx.state.settings["matter_numbering"] == "manual"
    if "display_number" in data:
        if not manual:
            raise invalid(
                "display_number can only be set when the account uses manual matter numbering; "
                "send reset_matter_number to regenerate it from the account's scheme"
            )
        record["display_number"] = text(data, "display_number")
    reset = boolean(data, "reset_matter_number") or False
    return creating or reset


@router.get("/matters")
def list_matters(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    q = request.query_params
    rows = ctx.state.all("matters")
    if q.get("status"):
        wanted = {s.strip().lower() for s in q["status"].split(",") if s.strip()}
        unknown = wanted - set(STATUSES)
        if unknown:
            raise invalid(
                f"status must be a comma list of open, pending, closed; got {', '.join(sorted(unknown))}"
            )
        rows = [m for m in rows if m["status"].lower() in wanted]
    for param in ("client_id", "responsible_attorney_id", "originating_attorney_id", "practice_area_id"):
        if q.get(param):
            rows = [m for m in rows if str(m.get(param)) == q[param]]
    if q.get("billable") in ("true", "false"):
        rows = [m for m in rows if m["billable"] == (q["billable"] == "true")]
    return JSONResponse(MATTERS.list(ctx, rows))


@router.post("/matters")
async def create_matter(request: Request) -> Response:
    ctx = ctx_of(request)
    MATTERS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        record: Record = {
            "id": 0,
            "status": "Open",
            "billable": True,
            "display_number": None,
            "open_date": None,
            "close_date": None,
            "pending_date": None,
            "location": None,
            "client_reference": None,
            "billing_method": "hourly",
            "user_id": ctx.user_id,
            "responsible_attorney_id": None,
            "originating_attorney_id": None,
            "practice_area_id": None,
        }
        _apply(ctx, record, data, creating=True)
        if "status" not in data:
            _status(record, "open", ctx.state.clock.now().date().isoformat())
        record["id"] = ctx.state.next_id("matters")
        record["number"] = int(ctx.state.settings["next_matter_number"])
        ctx.state.settings["next_matter_number"] = record["number"] + 1
        ctx.state.save_settings()
        ctx.state.stamp(record, created=True)
        record["display_number"] = display_number(ctx.state, record)
        ctx.state.put("matters", record)
        ctx.state.changed("matters", "created", record)
    return show(ctx, MATTERS, record, status=201)


@router.get("/matters/{matter_id}")
def show_matter(request: Request, matter_id: int) -> Response:
    ctx = ctx_of(request)
    return show(ctx, MATTERS, MATTERS.find(ctx, matter_id))


@router.patch("/matters/{matter_id}")
async def update_matter(request: Request, matter_id: int) -> Response:
    ctx = ctx_of(request)
    MATTERS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        current = MATTERS.find(ctx, matter_id)
        check_if_match(ctx, current)
        record = dict(current)
        if _apply(ctx, record, data, creating=False):
            record["display_number"] = display_number(ctx.state, record)
        ctx.state.put("matters", ctx.state.stamp(record))
        ctx.state.changed("matters", "updated", record, current)
    return show(ctx, MATTERS, record)


@router.delete("/matters/{matter_id}")
def delete_matter(request: Request, matter_id: int) -> Response:
    ctx = ctx_of(request)
    with ctx.state.lock:
        record = MATTERS.find(ctx, matter_id)
        ctx.state.remove("matters", matter_id)
        ctx.state.changed("matters", "deleted", record)
    return no_content()

"""Practice areas: a ``name`` (unique, case-insensitive), an optional ``code`` and ``category`` (one of
Clio's enum). A matter refers to one by ``practice_area{id}``; an area in use cannot be deleted (422).

List filters: ``name`` (exact, case-insensitive), ``code``, ``matter_id`` (the area of that matter).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio import admin
from casebridge.sandbox.clio.app import Ctx, ctx_of
from casebridge.sandbox.clio.errors import invalid
from casebridge.sandbox.clio.resource import Resource
from casebridge.sandbox.clio.resources.common import check_if_match, choice, no_content, show, text
from casebridge.sandbox.clio.spec import schemas
from casebridge.sandbox.clio.state import Record, SandboxState

PRACTICE_AREAS = Resource(
    "practice_areas",
    "PracticeArea",
    "PracticeArea",
    search=("name", "code"),
    orders=("id", "name", "category", "code"),
)


def categories() -> tuple[str, ...]:
    """Clio's category enum, from the committed spec."""
    prop = schemas()["PracticeArea_create_request_data"]["properties"]["category"]
    return tuple(prop["enum"])


router = APIRouter()


def _unique_name(state: SandboxState, name: str, ident: int) -> None:
    taken = any(
        p["id"] != ident and str(p.get("name") or "").lower() == name.lower()
        for p in state.all("practice_areas")
    )
    if taken:
        raise invalid(f"Name has already been taken: a practice area named {name!r} exists")


def _apply(ctx: Ctx, record: Record, data: dict[str, Any], *, creating: bool) -> None:
    if "name" in data or creating:
        name = text(data, "name", required=True, label="Name")
        assert name is not None
        record["name"] = name.strip()
        _unique_name(ctx.state, record["name"], record["id"])
    if "code" in data:
        record["code"] = text(data, "code")
    if "category" in data:
        record["category"] = choice(data, "category", categories())


@router.get("/practice_areas")
def list_practice_areas(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    q = request.query_params
    rows = ctx.state.all("practice_areas")
    if q.get("name"):
        rows = [p for p in rows if str(p.get("name") or "").lower() == q["name"].lower()]
    if q.get("code"):
        rows = [p for p in rows if p.get("code") == q["code"]]
    if q.get("matter_id"):
        matter = ctx.state.get("matters", int(q["matter_id"])) if q["matter_id"].isdigit() else None
        wanted = matter.get("practice_area_id") if matter else None
        rows = [p for p in rows if p["id"] == wanted]
    return JSONResponse(PRACTICE_AREAS.list(ctx, rows))


@router.post("/practice_areas")
async def create_practice_area(request: Request) -> Response:
    ctx = ctx_of(request)
    PRACTICE_AREAS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        record: Record = {"id": 0, "name": None, "code": None, "category": None}
        _apply(ctx, record, data, creating=True)
        record["id"] = ctx.state.next_id("practice_areas")
        ctx.state.put("practice_areas", ctx.state.stamp(record, created=True))
        ctx.state.changed("practice_areas", "created", record)
    return show(ctx, PRACTICE_AREAS, record, status=201)


@router.get("/practice_areas/{area_id}")
def show_practice_area(request: Request, area_id: int) -> Response:
    ctx = ctx_of(request)
    return show(ctx, PRACTICE_AREAS, PRACTICE_AREAS.find(ctx, area_id))


@router.patch("/practice_areas/{area_id}")
async def update_practice_area(request: Request, area_id: int) -> Response:
    ctx = ctx_of(request)
    PRACTICE_AREAS.selection(ctx)
    data = await ctx.data()
    with ctx.state.lock:
        current = PRACTICE_AREAS.find(ctx, area_id)
        check_if_match(ctx, current)
        record = dict(current)
        _apply(ctx, record, data, creating=False)
        ctx.state.put("practice_areas", ctx.state.stamp(record))
        ctx.state.changed("practice_areas", "updated", record, current)
    return show(ctx, PRACTICE_AREAS, record)


@router.delete("/practice_areas/{area_id}")
def delete_practice_area(request: Request, area_id: int) -> Response:
    ctx = ctx_of(request)
    with ctx.state.lock:
        record = PRACTICE_AREAS.find(ctx, area_id)
        used = sum(1 for m in ctx.state.all("matters") if m.get("practice_area_id") == area_id)
        if used:
            raise invalid(
                f"This practice area is used by {used} matter{'' if used == 1 else 's'} and cannot be deleted"
            )
        ctx.state.remove("practice_areas", area_id)
        ctx.state.changed("practice_areas", "deleted", record)
    return no_content()


def seed_practice_area(state: SandboxState, raw: dict[str, Any]) -> Record:
    """A seed record ``{"name": "Conveyancing", "code": "CONV", "category": "real_estate"}``."""
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"practice_areas[{raw['id']}]: name is required")
    category = raw.get("category")
    if category is not None and category not in categories():
        raise ValueError(f"practice_areas[{raw['id']}]: category {category!r} is not one of Clio's")
    record: Record = {"id": raw["id"], "name": name.strip(), "code": raw.get("code"), "category": category}
    return state.stamp(record, created=True)


admin.SEEDERS["practice_areas"] = seed_practice_area

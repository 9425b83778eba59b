"""Users (read-only): ``/users``, ``/users/{id}``, ``/users/who_am_i``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio.app import ctx_of
from casebridge.sandbox.clio.resource import Resource
from casebridge.sandbox.clio.resources.common import show
from casebridge.sandbox.clio.state import Record, SandboxState


def _account(state: SandboxState, _: Record) -> dict[str, object]:
    return {"id": state.settings["account_id"], "name": state.settings["account_name"]}


USERS = Resource(
    "users",
    "User",
    "User",
    nested={"account": _account},
    search=("name", "email"),
    orders=("id", "name", "email", "created_at", "updated_at"),
    max_limit=2000,
)

router = APIRouter()


@router.get("/users/who_am_i")
def who_am_i(request: Request) -> Response:
    ctx = ctx_of(request)
    return show(ctx, USERS, USERS.find(ctx, ctx.user_id))


@router.get("/users")
def list_users(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    q = ctx.request.query_params
    rows = ctx.state.all("users")
    if q.get("enabled") in ("true", "false"):
        rows = [u for u in rows if u["enabled"] == (q["enabled"] == "true")]
    if q.get("subscription_type"):
        rows = [u for u in rows if u["subscription_type"] == q["subscription_type"]]
    if q.get("name"):
        rows = [u for u in rows if q["name"].lower() in u["name"].lower()]
    return JSONResponse(USERS.list(ctx, rows))


@router.get("/users/{user_id}")
def show_user(request: Request, user_id: int) -> Response:
    ctx = ctx_of(request)
    return show(ctx, USERS, USERS.find(ctx, user_id))

"""The sandbox's own admin API under ``/_sandbox/``, apart from the Clio surface and without auth
(the sandbox listens on loopback): reset, seed, inspect state, request counts per endpoint and per
token (tests count our connector's API calls with it), account settings such as the matter numbering
scheme, OAuth apps and ready-made tokens, fault injection, and the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from casebridge.sandbox.clio import oauth
from casebridge.sandbox.clio.faults import Faults
from casebridge.sandbox.clio.ratelimit import RateLimiter
from casebridge.sandbox.clio.state import Record, SandboxState

SeedLoader = Callable[[SandboxState, dict[str, Any]], Record]
# Per kind, how a seed record becomes a stored one (resource modules add theirs); others are stored as
# given, with an id, timestamps and an etag.
SEEDERS: dict[str, SeedLoader] = {}
SEEDABLE = (
    "users",
    "contacts",
    "practice_areas",  # before matters: a matter may refer to one
    "matters",
    "expense_categories",  # before activities: an expense takes its category's rate
    "activities",
    "bills",
    "folders",
    "documents",
)


class AppIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "Sandbox app"
    client_id: str | None = None
    client_secret: str | None = None
    redirect_uris: list[str] = Field(min_length=1)


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_name: str | None = None
    matter_numbering: str | None = Field(default=None, pattern="^(default|number|year|year_month|manual)$")
    next_matter_number: int | None = Field(default=None, ge=1)
    matter_number_digits: int | None = Field(default=None, ge=1, le=10)
    rate_limit: int | None = Field(default=None, ge=1, description="Requests per window per token.")
    rate_limit_window: float | None = Field(
        default=None, ge=1, le=3600, description="The rate-limit window in seconds (Clio's is 60)."
    )


class ClockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    advance_seconds: float = Field(gt=0)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    client_id: str | None = None
    user_id: int | None = None


def seed(state: SandboxState, data: dict[str, Any]) -> dict[str, int]:
    """Load records from a seed document: ``{"settings": {...}, "apps": [...], "<kind>": [...]}``."""
    unknown = set(data) - {"settings", "apps", *SEEDABLE}
    if unknown:
        raise ValueError(
            f"unknown seed sections: {', '.join(sorted(unknown))}; allowed: settings, apps, {', '.join(SEEDABLE)}"
        )
    loaded: dict[str, int] = {}
    with state.lock:
        state.settings.update(data.get("settings", {}))
        state.save_settings()
        for app in data.get("apps", []):
            oauth.register_app(state, **app)
        for kind in SEEDABLE:
            for raw in data.get(kind, []):
                if not isinstance(raw, dict):
                    raise ValueError(f"{kind}: every record must be an object")
                record = dict(raw)
                if "id" in record:
                    state.sequences[kind] = max(state.sequences[kind], int(record["id"]))
                else:
                    record["id"] = state.next_id(kind)
                loader = SEEDERS.get(kind)
                if loader is not None:
                    record = loader(state, record)
                else:
                    state.stamp(record, created=True)
                state.put(kind, record)
                loaded[kind] = loaded.get(kind, 0) + 1
        state.save_settings()
    return loaded


def router(state: SandboxState, limiter: RateLimiter, faults: Faults, hooks: Any) -> APIRouter:
    r = APIRouter(tags=["sandbox admin"])

    @r.post("/reset")
    def reset() -> dict[str, str]:
        state.reset()
        state.ensure_defaults()
        limiter.reset()
        limiter.limit = state.config.rate_limit
        limiter.window = state.config.rate_limit_window
        faults.configure({})
        return {"status": "reset"}

    @r.post("/seed")
    def load_seed(body: dict[str, Any]) -> dict[str, Any]:
        try:
            return {"loaded": seed(state, body)}
        except (ValueError, TypeError) as exc:
            raise HTTPException(422, str(exc)) from None

    @r.get("/state")
    def inspect() -> dict[str, Any]:
        with state.lock:
            return {
                "counts": {kind: len(rows) for kind, rows in sorted(state.tables.items()) if rows},
                "settings": state.settings,
                "clock_offset_seconds": state.clock.offset.total_seconds(),
            }

    @r.get("/state/{kind}")
    def records(kind: str) -> list[dict[str, Any]]:
        if kind.startswith("oauth"):
            raise HTTPException(404, "OAuth secrets are not listed; see /_sandbox/apps")
        return [_plain(r) for r in state.all(kind)]

    @r.get("/requests")
    def requests() -> dict[str, Any]:
        return {
            "total": sum(state.requests_by_endpoint.values()),
            "by_endpoint": dict(state.requests_by_endpoint),
            "by_token": dict(state.requests_by_token),
            "rate_limited_by_token": dict(state.rate_limited_by_token),
        }

    @r.delete("/requests", status_code=204)
    def clear_requests() -> None:
        state.requests_by_endpoint.clear()
        state.requests_by_token.clear()
        state.rate_limited_by_token.clear()

    @r.get("/settings")
    def settings() -> dict[str, Any]:
        return state.settings

    @r.patch("/settings")
    def change_settings(body: SettingsIn) -> dict[str, Any]:
        with state.lock:
            changes = body.model_dump(exclude_none=True)
            if "rate_limit" in changes:
                limiter.limit = int(changes["rate_limit"])
            if "rate_limit_window" in changes:
                limiter.window = float(changes["rate_limit_window"])
                limiter.reset()
            state.settings.update(changes)
            state.save_settings()
            return state.settings

    @r.get("/apps")
    def apps() -> list[dict[str, Any]]:
        return [_plain(a) for a in state.all("oauth_apps")]

    @r.post("/apps", status_code=201)
    def add_app(body: AppIn) -> dict[str, Any]:
        return _plain(oauth.register_app(state, **body.model_dump()))

    @r.post("/tokens", status_code=201)
    def mint_token(body: TokenIn) -> dict[str, Any]:
        """A ready-made token for the sandbox user (skipping the browser flow), as /oauth/token answers."""
        with state.lock:
            app = oauth.find_app(state, body.client_id) if body.client_id else None
            if body.client_id and app is None:
                raise HTTPException(404, f"no app with client_id {body.client_id}")
            if app is None:
                app = oauth.register_app(
                    state, client_id="sandbox-default", redirect_uris=["http://127.0.0.1/callback"]
                )
            user_id = body.user_id or int(state.settings.get("sandbox_user_id", 1))
            if state.get("users", user_id) is None:
                raise HTTPException(404, f"no user {user_id}")
            return oauth.issue_token(state, oauth.grant_for(state, app, user_id))

    @r.get("/faults")
    def get_faults() -> dict[str, Any]:
        return faults.snapshot()

    @r.put("/faults")
    def put_faults(body: dict[str, Any]) -> dict[str, Any]:
        try:
            faults.configure(body)
        except (TypeError, ValueError) as exc:  # FaultConfigError names the setting and what it takes
            raise HTTPException(422, str(exc)) from None
        return faults.snapshot()

    @r.get("/clock")
    def clock() -> dict[str, Any]:
        return {"now": state.clock.now().isoformat(), "offset_seconds": state.clock.offset.total_seconds()}

    @r.post("/clock")
    def advance(body: ClockIn) -> dict[str, Any]:
        state.clock.advance(body.advance_seconds)
        return clock()

    return r


def _plain(record: Record) -> dict[str, Any]:
    from casebridge.sandbox.clio.resource import jsonable

    out: dict[str, Any] = jsonable(record)
    return out

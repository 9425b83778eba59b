"""/api/v1/connections (Clio), per-record sync (/contacts/{id}/sync, /matters/{id}/sync), conflicts."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from casebridge.connectors.clio import service as clio
from casebridge.kit.context import ALL_ROLES, WRITERS, Role
from casebridge.kit.deps import ContextDep, PrincipalDep, Require, SessionDep
from casebridge.kit.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, paginate
from casebridge.kit.problems import Problem, field_error, validation
from casebridge.kit.uow import ApiRoute
from casebridge.models import Connection, SyncConflict, SyncLink
from casebridge.models.sync import LINK_STATES
from casebridge.sync import service
from casebridge.sync.capture import enqueue_reconcile
from casebridge.sync.runtime import sync_env
from casebridge.sync.schemas import (
    BackfillIn,
    ConflictOut,
    ConflictResolve,
    ConnectionCreate,
    ConnectionOut,
    ConnectionPatch,
    HealthOut,
    LinkOut,
    RecordSync,
    SyncStatusOut,
)
from casebridge.sync.settings import SyncSettings
from casebridge.sync.tasks import POLL, WEBHOOKS, backfill_running, enqueue_backfill, run_now, start_chains

router = APIRouter(prefix="/connections", tags=["connections"], route_class=ApiRoute)
records = APIRouter(tags=["sync"], route_class=ApiRoute)
READ = [Depends(Require(*ALL_ROLES))]
WRITE = [Depends(Require(*WRITERS))]
ADMIN = [Depends(Require(Role.ADMIN))]
CALLBACK = "/oauth/clio/callback"


@router.get("", dependencies=READ)
def list_connections(session: SessionDep) -> list[ConnectionOut]:
    rows = session.scalars(select(Connection).order_by(Connection.created_at.desc()))
    return [ConnectionOut.of(c) for c in rows]


@router.post("", dependencies=ADMIN, status_code=201)
def create_connection(session: SessionDep, ctx: ContextDep, body: ConnectionCreate) -> ConnectionOut:
    """Start connecting to Clio: the answer's `authorize_url` is where a Clio user approves the
    connection; Clio then sends them to the redirect URI (`/oauth/clio/callback`), which completes it."""
    redirect = body.redirect_uri
    if redirect is None:
        if not ctx.settings.public_url:
            raise validation(
                [
                    field_error(
                        "body.redirect_uri",
                        "give the redirect URI registered on your Clio app, or set CASEBRIDGE_PUBLIC_URL",
                        "missing",
                    )
                ]
            )
        redirect = f"{ctx.settings.public_url.rstrip('/')}{CALLBACK}"
    started = clio.begin(
        session,
        sync_env(ctx.db, ctx.settings),
        name=body.name,
        region=body.region,
        base_url=body.base_url,
        client_id=body.client_id,
        client_secret=body.client_secret,
        redirect_uri=redirect,
        settings=body.settings,
    )
    return ConnectionOut.of(started.connection, started.authorize_url)


@router.get("/{connection_id}", dependencies=READ)
def get_connection(session: SessionDep, connection_id: uuid.UUID) -> ConnectionOut:
    return ConnectionOut.of(service.get_connection(session, connection_id))


@router.patch("/{connection_id}", dependencies=ADMIN)
def update_connection(session: SessionDep, connection_id: uuid.UUID, body: ConnectionPatch) -> ConnectionOut:
    """Rename the connection or change its sync settings (per-entity maps merge into the current ones)."""
    conn = service.get_connection(session, connection_id)
    if body.name is not None:
        conn.name = body.name
    if body.settings is not None:
        current = SyncSettings.model_validate(conn.settings or {})
        updated = body.settings.apply(current)
        conn.settings = updated.model_dump()
        if conn.state == "connected":
            if updated.webhooks != current.webhooks:
                run_now(session, WEBHOOKS, connection_id)  # create or remove them at once
            if updated.poll_interval_seconds != current.poll_interval_seconds:
                run_now(session, POLL, connection_id)  # and keep polling at the new interval
    session.flush()
    return ConnectionOut.of(conn)


@router.post("/{connection_id}/authorize", dependencies=ADMIN)
def reauthorize_connection(session: SessionDep, ctx: ContextDep, connection_id: uuid.UUID) -> ConnectionOut:
    """A new `authorize_url` for a connection whose grant was revoked or expired."""
    conn = service.get_connection(session, connection_id)
    url = clio.reauthorize(session, sync_env(ctx.db, ctx.settings), conn)
    return ConnectionOut.of(conn, url)


@router.delete("/{connection_id}", dependencies=ADMIN, status_code=204)
async def disconnect_connection(ctx: ContextDep, connection_id: uuid.UUID) -> Response:
    """Disconnect: syncing stops, our webhooks are deleted in Clio and the grant is revoked. Records
    and their links stay."""
    env = sync_env(ctx.db, ctx.settings)

    def run() -> bool:
        from casebridge.db.session import unit_of_work

        with unit_of_work(ctx.db.reader) as session:
            if session.get(Connection, connection_id) is None:
                return False
        clio.disconnect(env, connection_id)
        return True

    if not await run_in_threadpool(run):
        raise Problem(404, f"No connection with id {connection_id}.", slug="not-found")
    return Response(status_code=204)


@router.get("/{connection_id}/health", dependencies=READ)
def connection_health(session: SessionDep, connection_id: uuid.UUID) -> HealthOut:
    """Webhooks and their expiry, the last poll and its lag, the full reconcile, the job queue, the rate
    budget, records by sync state, open conflicts and recent errors, with a list of problems."""
    return service.health(session, service.get_connection(session, connection_id))


@router.get("/{connection_id}/links", dependencies=READ)
def list_links(
    session: SessionDep,
    connection_id: uuid.UUID,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    entity: Literal["contact", "matter"] | None = None,
    state: Annotated[str | None, Query(description=f"One of {', '.join(LINK_STATES)}.")] = None,
) -> Page[LinkOut]:
    service.get_connection(session, connection_id)
    if state is not None and state not in LINK_STATES:
        raise validation(
            [field_error("query.state", f"state must be one of {', '.join(LINK_STATES)}", "enum")]
        )
    stmt = select(SyncLink).where(SyncLink.connection_id == connection_id)
    if entity:
        stmt = stmt.where(SyncLink.entity == entity)
    if state:
        stmt = stmt.where(SyncLink.state == state)
    page = paginate(
        session,
        stmt,
        columns={"updated_at": SyncLink.updated_at},
        id_column=SyncLink.id,
        order="-updated_at",
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[LinkOut.of(link) for link in page.rows], next_cursor=page.next_cursor)


@router.post("/{connection_id}/links/{link_id}/retry", dependencies=WRITE, status_code=202)
def retry_link(session: SessionDep, connection_id: uuid.UUID, link_id: uuid.UUID) -> LinkOut:
    """Sync this record again now (after fixing what made it fail); works for records from either side."""
    link = session.get(SyncLink, link_id)
    if link is None or link.connection_id != connection_id:
        raise Problem(404, f"No link {link_id} in connection {connection_id}.", slug="not-found")
    link.error_count, link.next_retry_at = 0, None
    enqueue_reconcile(session, link.id, trigger="retry requested")
    return LinkOut.of(link)


@router.get("/{connection_id}/conflicts", dependencies=READ)
def list_conflicts(
    session: SessionDep,
    connection_id: uuid.UUID,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    state: Literal["open", "resolved"] = "open",
) -> Page[ConflictOut]:
    """Fields both sides changed since they last agreed, held for a person (policy `hold`)."""
    service.get_connection(session, connection_id)
    stmt = select(SyncConflict).where(
        SyncConflict.connection_id == connection_id, SyncConflict.state == state
    )
    page = paginate(
        session,
        stmt,
        columns={"created_at": SyncConflict.created_at},
        id_column=SyncConflict.id,
        order="created_at",
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[ConflictOut.of(c) for c in page.rows], next_cursor=page.next_cursor)


@router.post("/{connection_id}/backfill", dependencies=ADMIN, status_code=202)
def start_backfill(session: SessionDep, connection_id: uuid.UUID, body: BackfillIn) -> dict[str, str]:
    """Sync history: push Casebridge records not yet in Clio, pull Clio records not yet here, or both.
    Records that exist on both sides are matched and linked rather than duplicated. Runs in the
    background at bulk priority; progress is in the health endpoint's `streams[].backfill`."""
    conn = service.get_connection(session, connection_id)
    if conn.state != "connected":
        raise Problem(409, f"The connection is {conn.state}; connect it first.", slug="not-connected")
    if backfill_running(session, connection_id):
        raise Problem(
            409, "A backfill is already running for this connection; see its health.", slug="backfill-running"
        )
    enqueue_backfill(session, connection_id, body.entity, body.direction)
    return {"status": "started", "entity": body.entity, "direction": body.direction}


@router.post("/{connection_id}/poll", dependencies=ADMIN, status_code=202)
def poll_now(session: SessionDep, connection_id: uuid.UUID) -> dict[str, str]:
    """Poll Clio for changes now (and keep polling at the interval)."""
    service.get_connection(session, connection_id)
    run_now(session, POLL, connection_id)
    start_chains(session, connection_id)
    return {"status": "polling"}


# --- conflicts and records --------------------------------------------------------------------


@records.post("/sync/conflicts/{conflict_id}/resolve", dependencies=WRITE)
def resolve_conflict(
    session: SessionDep, principal: PrincipalDep, conflict_id: uuid.UUID, body: ConflictResolve
) -> ConflictOut:
    """Settle a held conflict: pick `casebridge` or `clio`, or give the `value` both sides should hold.
    The next sync writes it wherever it differs."""
    return service.resolve_conflict(session, principal, conflict_id, body.pick, body.value)


@records.get("/contacts/{contact_id}/sync", dependencies=READ)
def contact_sync_status(session: SessionDep, contact_id: uuid.UUID) -> SyncStatusOut:
    """The contact's sync with Clio: state, Clio id, last sync, error and next retry, conflicts, and the
    journal of what each sync read, decided, wrote and which API calls it made."""
    return service.status(session, "contact", contact_id)


@records.post("/contacts/{contact_id}/sync", dependencies=WRITE, status_code=202)
def sync_contact(session: SessionDep, contact_id: uuid.UUID, body: RecordSync) -> SyncStatusOut:
    """Sync this contact with Clio now: one that existed before the connection starts syncing, one with
    `remote_id` is linked to that Clio contact, one already synced is reconciled."""
    return service.request_sync(session, "contact", contact_id, body.remote_id)


@records.get("/matters/{matter_id}/sync", dependencies=READ)
def matter_sync_status(session: SessionDep, matter_id: uuid.UUID) -> SyncStatusOut:
    """The matter's sync with Clio (as for contacts)."""
    return service.status(session, "matter", matter_id)


@records.post("/matters/{matter_id}/sync", dependencies=WRITE, status_code=202)
def sync_matter(session: SessionDep, matter_id: uuid.UUID, body: RecordSync) -> SyncStatusOut:
    """Sync this matter with Clio now, or link it to an existing Clio matter (`remote_id`): the Prolegis
    "Link with Clio Matter"."""
    return service.request_sync(session, "matter", matter_id, body.remote_id)

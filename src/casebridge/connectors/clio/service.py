"""Connecting to Clio and disconnecting: the OAuth grant, the connection row, and starting or stopping
everything that syncs it.

Only one connection is live at a time (a matter takes its number from one Clio account). Network
calls happen outside database transactions.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casebridge.connectors.clio import oauth
from casebridge.connectors.clio.client import API_VERSION, ClioClient
from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.events.delivery import resume, subscribe
from casebridge.events.outbox import subscribers_changed
from casebridge.kit.problems import Problem, conflict, field_error, validation
from casebridge.models import Connection, EventSubscription, SyncLink, SyncStream
from casebridge.models.sync import AUTHORIZING, CONNECTED, DISCONNECTED, ERROR, NEEDS_REAUTHORIZATION, PENDING
from casebridge.sync import capture
from casebridge.sync.engine import SyncEnv
from casebridge.sync.errors import SyncError
from casebridge.sync.runtime import SPECS, clio_runtime
from casebridge.sync.settings import SyncSettings
from casebridge.sync.tasks import start_chains, subscription_name

LIVE = (AUTHORIZING, CONNECTED, NEEDS_REAUTHORIZATION)


@dataclass(frozen=True)
class Started:
    connection: Connection
    authorize_url: str


def base_url_for(region: str | None, base_url: str | None) -> tuple[str | None, str]:
    if base_url:
        return None, base_url.rstrip("/")
    region = region or "us"
    if region not in oauth.REGIONS:
        raise validation(
            [field_error("body.region", f"region must be one of {', '.join(oauth.REGIONS)}", "region")]
        )
    return region, oauth.REGIONS[region]


def begin(
    session: Session,
    env: SyncEnv,
    *,
    name: str,
    region: str | None,
    base_url: str | None,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    settings: SyncSettings | None = None,
    sandbox_auto_approve: bool = False,
) -> Started:
    """A new connection waiting for the person to authorize it; returns where to send them."""
    live = session.scalar(select(Connection).where(Connection.state.in_(LIVE)))
    if live is not None:
        raise conflict(
            f"Casebridge is already connected to Clio ({live.name}, state {live.state}); disconnect it "
            f"first (DELETE /api/v1/connections/{live.id}) or re-authorize it "
            f"(POST /api/v1/connections/{live.id}/authorize).",
            "already-connected",
        )
    region, host = base_url_for(region, base_url)
    runtime = clio_runtime(env)
    conn = Connection(
        vendor="clio",
        name=name,
        state=AUTHORIZING,
        region=region,
        base_url=host,
        api_version=API_VERSION,
        client_id=client_id,
        client_secret_encrypted=runtime.secrets.encrypt(client_secret),
        redirect_uri=redirect_uri,
        oauth_state=secrets.token_urlsafe(24),
        settings=(settings or SyncSettings()).model_dump(),
    )
    session.add(conn)
    session.flush()
    assert conn.oauth_state is not None
    url = oauth.authorize_url(
        host, client_id, redirect_uri, conn.oauth_state, sandbox_auto_approve=sandbox_auto_approve
    )
    return Started(conn, url)


def reauthorize(
    session: Session, env: SyncEnv, connection: Connection, *, sandbox_auto_approve: bool = False
) -> str:
    if connection.state == DISCONNECTED:
        raise conflict("This connection is disconnected; create a new one.", "disconnected")
    connection.oauth_state = secrets.token_urlsafe(24)
    session.flush()
    return oauth.authorize_url(
        connection.base_url,
        connection.client_id,
        connection.redirect_uri,
        connection.oauth_state,
        sandbox_auto_approve=sandbox_auto_approve,
    )


def complete(env: SyncEnv, *, state: str, code: str) -> uuid.UUID:
    """The callback: exchange the code, learn who authorized, and start syncing."""
    runtime = clio_runtime(env)
    with unit_of_work(env.db.reader) as session:
        conn = session.scalar(select(Connection).where(Connection.oauth_state == state))
        if conn is None:
            raise Problem(
                400,
                "This authorization is unknown or was already used; start the connection again.",
                slug="oauth-state",
            )
        connection_id, host, client_id = conn.id, conn.base_url, conn.client_id
        client_secret = runtime.secrets.decrypt(conn.client_secret_encrypted)
        redirect_uri = conn.redirect_uri
    try:
        tokens = oauth.exchange_code(runtime.http, host, client_id, client_secret, code, redirect_uri)
    except SyncError as exc:
        raise Problem(502, f"Clio did not complete the authorization: {exc}", slug="oauth-exchange") from None
    with unit_of_work(env.db.writer) as session:
        conn = session.get(Connection, connection_id)
        assert conn is not None
        conn.access_token_encrypted = runtime.secrets.encrypt(tokens.access_token)
        conn.refresh_token_encrypted = runtime.secrets.encrypt(tokens.refresh_token)
        conn.token_expires_at = tokens.expires_at
        conn.oauth_state = None
    runtime.forget_token(connection_id)
    who: dict[str, Any] = {}
    try:
        client = ClioClient.for_connection(runtime, connection_id)
        who = client.get("/users/who_am_i", {"fields": "id,name,account{name}"})["data"]
    except SyncError as exc:
        raise Problem(
            502, f"Clio accepted the authorization but its API did not answer: {exc}", slug="clio-unavailable"
        ) from None
    with unit_of_work(env.db.writer) as session:
        conn = session.get(Connection, connection_id)
        assert conn is not None
        first = conn.connected_at is None
        conn.state = CONNECTED
        conn.remote_user_id = int(who["id"]) if who.get("id") is not None else None
        conn.remote_user_name = who.get("name")
        conn.remote_account_name = (who.get("account") or {}).get("name")
        conn.connected_at = conn.connected_at or utcnow()
        conn.last_error = conn.last_error_at = None
        _start(session, conn, first=first, remote_now=runtime.remote_now(connection_id))
    return connection_id


def _start(session: Session, conn: Connection, *, first: bool, remote_now: datetime) -> None:
    """Subscribe to our events, set the poll cursors (history is synced on request), start the jobs,
    and pick up links that waited while the connection could not sync."""
    name = subscription_name(conn.id)
    sub = session.scalar(select(EventSubscription).where(EventSubscription.name == name))
    if sub is None:
        subscribe(session, name=name, kind="sync", target_id=str(conn.id))
    elif not sub.active:
        resume(session, sub)
    if first:
        # Clio records created before this are history (synced on request), as ours are; a minute's
        # margin, as for the poll cursors, so a record made while connecting is not missed.
        conn.history_before = remote_now - timedelta(minutes=1)
        for entity in SPECS:
            if session.get(SyncStream, (conn.id, entity)) is None:
                session.add(
                    SyncStream(
                        connection_id=conn.id,
                        entity=entity,
                        # On Clio's clock (its Date header): polls compare with its timestamps.
                        poll_cursor=remote_now - timedelta(minutes=1),
                        last_poll_changes=0,
                    )
                )
    start_chains(session, conn.id)
    waiting = session.scalars(
        select(SyncLink.id).where(SyncLink.connection_id == conn.id, SyncLink.state.in_([PENDING, ERROR]))
    )
    for link_id in list(waiting):
        capture.enqueue_reconcile(session, link_id, trigger="connected")


def disconnect(env: SyncEnv, connection_id: uuid.UUID) -> None:
    """Stop syncing, delete our webhooks in Clio, revoke the grant and forget the tokens. Links and
    the journal stay, so a later connection to the same account could be linked again by hand."""
    from casebridge.connectors.clio import webhooks

    runtime = clio_runtime(env)
    with unit_of_work(env.db.reader) as session:
        conn = session.get(Connection, connection_id)
        if conn is None:
            return
        was_connected = conn.state == CONNECTED
        token = runtime.secrets.decrypt(conn.access_token_encrypted) if conn.access_token_encrypted else None
        host = conn.base_url
    if was_connected:
        try:
            webhooks.remove(env, connection_id)
        except SyncError:
            pass  # best effort: an expired webhook disappears by itself
    if token is not None:
        oauth.deauthorize(runtime.http, host, token)
    runtime.forget_token(connection_id)
    with unit_of_work(env.db.writer) as session:
        conn = session.get(Connection, connection_id)
        if conn is None:
            return
        conn.state = DISCONNECTED
        conn.disconnected_at = utcnow()
        conn.access_token_encrypted = conn.refresh_token_encrypted = None
        conn.token_expires_at = None
        conn.oauth_state = None
        sub = session.scalar(
            select(EventSubscription).where(EventSubscription.name == subscription_name(connection_id))
        )
        if sub is not None:
            sub.active = False
    subscribers_changed()

"""The demo's two-way sync: connect the demo firm to the demo Clio sandbox (OAuth, approved unattended),
sync the history both ways, and show a change crossing each way.

Used by ``casebridge demo`` (casebridge/demo.py) once both servers are up.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from casebridge.config import Settings
from casebridge.connectors.clio import service
from casebridge.db.session import Database, unit_of_work
from casebridge.models import Connection, SyncRemoteWebhook
from casebridge.models.sync import CONNECTED, DISCONNECTED
from casebridge.sync.runtime import sync_env
from casebridge.sync.settings import SyncSettings
from casebridge.sync.tasks import enqueue_backfill

DEMO_CLIENT_ID = "casebridge-demo-sync"


@dataclass(frozen=True)
class Crossing:
    what: str
    seconds: float | None  # None: it had not crossed when we stopped waiting


def connect(settings: Settings, db: Database, api_base: str, clio_base: str) -> tuple[uuid.UUID, bool]:
    """The live connection to this sandbox (made now, or kept from the last run); True when new."""
    env = sync_env(db, settings)
    with unit_of_work(db.reader) as session:
        live = list(session.scalars(select(Connection).where(Connection.state != DISCONNECTED)))
    for conn in live:
        if conn.base_url == clio_base and conn.state == CONNECTED:
            return conn.id, False
        service.disconnect(env, conn.id)
    callback = f"{api_base}/oauth/clio/callback"
    secret = uuid.uuid4().hex
    r = httpx.post(
        f"{clio_base}/_sandbox/apps",
        json={
            "name": "Casebridge demo",
            "client_id": f"{DEMO_CLIENT_ID}-{secret[:6]}",
            "client_secret": secret,
            "redirect_uris": [callback],
        },
        timeout=10,
    )
    r.raise_for_status()
    client_id = r.json()["client_id"]
    with unit_of_work(db.writer) as session:
        started = service.begin(
            session,
            env,
            name="Clio sandbox",
            region=None,
            base_url=clio_base,
            client_id=client_id,
            client_secret=secret,
            redirect_uri=callback,
            settings=SyncSettings(poll_interval_seconds=10),
            sandbox_auto_approve=True,
        )
    location = httpx.get(started.authorize_url, timeout=10).headers.get("location", "")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    connection_id = service.complete(env, state=params["state"], code=params["code"])
    with unit_of_work(db.writer) as session:
        enqueue_backfill(session, connection_id, "all", "both")

    def webhooks_enabled() -> bool:
        with unit_of_work(db.reader) as session:
            statuses = list(
                session.scalars(
                    select(SyncRemoteWebhook.status).where(SyncRemoteWebhook.connection_id == connection_id)
                )
            )
        return len(statuses) == 2 and all(s == "enabled" for s in statuses)

    _wait(webhooks_enabled, 10)  # so the first change in Clio arrives by webhook, not the next poll
    return connection_id, True


def _wait(predicate: object, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if callable(predicate) and predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def show_crossings(api: httpx.Client, clio_base: str, clio_token: str, stamp: str) -> list[Crossing]:
    """Make a contact in Clio and a matter here, and time how long each takes to appear on the other
    side."""
    crossings = []
    clio = httpx.Client(
        base_url=f"{clio_base}/api/v4", headers={"Authorization": f"Bearer {clio_token}"}, timeout=10
    )
    with clio:
        made = clio.post(
            "/contacts",
            json={"data": {"type": "Person", "first_name": "Priya", "last_name": f"Nair {stamp}"}},
        )
        made.raise_for_status()

        def arrived_here() -> bool:
            rows = api.get("/contacts", params={"q": f"Nair {stamp}"}).json().get("data", [])
            return bool(rows)

        crossings.append(
            Crossing(f"contact 'Priya Nair {stamp}' made in Clio, now in Casebridge", _wait(arrived_here, 15))
        )
        client = api.get("/contacts", params={"q": f"Nair {stamp}"}).json().get("data", [])
        if client:
            matter = api.post(
                "/matters", json={"title": f"Purchase of 3 Mill Lane ({stamp})", "client_id": client[0]["id"]}
            )
            matter.raise_for_status()
            matter_id = matter.json()["id"]

            def numbered_by_clio() -> bool:
                number = str(api.get(f"/matters/{matter_id}").json()["display_number"])
                return not number.startswith("PENDING-")

            took = _wait(numbered_by_clio, 15)
            number = api.get(f"/matters/{matter_id}").json()["display_number"]
            crossings.append(Crossing(f"matter opened in Casebridge, created in Clio as {number}", took))
    return crossings

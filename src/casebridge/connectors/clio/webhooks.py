"""Clio webhooks for the sync: one per model, kept alive, and the receiver of their deliveries.

``ensure`` (the hourly ``sync.webhooks`` job) creates the contact and matter webhooks when missing —
URL ``{CASEBRIDGE_PUBLIC_URL}/hooks/clio/{token}``, the mapped fields, created/updated/deleted,
expiring in 30 days — activates one left ``pending`` or ``suspended``, renews one with less than half
its life left (on Clio's clock, read from its ``Date`` header), and re-creates one that is gone.

``receive`` answers a delivery: it echoes the ``X-Hook-Secret`` handshake, verifies
``X-Hook-Signature`` (HMAC-SHA256 of the raw body with the webhook's secret; hex or base64, since
Clio's encoding is unconfirmed), stores the delivery once in the inbox (by a digest of the body: a
duplicate is answered 200 and dropped), and records what it says on the link (sync/capture.py), all
in one transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select

from casebridge.connectors.clio.client import ClioClient
from casebridge.connectors.clio.resources import REMOTES
from casebridge.db.session import dialect_insert, unit_of_work
from casebridge.db.types import utcnow
from casebridge.models import Connection, SyncInboxEntry, SyncRemoteWebhook
from casebridge.models.sync import CONNECTED
from casebridge.sync import capture
from casebridge.sync.engine import SyncEnv
from casebridge.sync.errors import NotFound
from casebridge.sync.runtime import SPECS, clio_runtime

log = logging.getLogger("casebridge.clio")

LIFETIME = timedelta(days=30)
RENEW_WHEN_LEFT = timedelta(days=15)
CHECK_EVERY = timedelta(hours=1)
EVENTS = ["created", "updated", "deleted"]
PATH = "/hooks/clio"
WEBHOOK_FIELDS = "id,etag,url,status,expires_at,shared_secret,fields,model"


def url_for(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{PATH}/{token}"


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _row(env: SyncEnv, connection_id: uuid.UUID, model: str) -> tuple[uuid.UUID, str, int | None, str | None]:
    with unit_of_work(env.db.writer) as session:
        row = session.scalar(
            select(SyncRemoteWebhook).where(
                SyncRemoteWebhook.connection_id == connection_id, SyncRemoteWebhook.model == model
            )
        )
        if row is None:
            row = SyncRemoteWebhook(
                connection_id=connection_id,
                model=model,
                url_token=secrets.token_urlsafe(24),
                status="creating",
                deliveries=0,
            )
            session.add(row)
            session.flush()
        return row.id, row.url_token, row.remote_id, row.secret_encrypted


def ensure(env: SyncEnv, connection_id: uuid.UUID, public_url: str) -> None:
    runtime = clio_runtime(env)
    client = ClioClient.for_connection(runtime, connection_id, bulk=True)
    for model in SPECS:
        resource = REMOTES[model]
        row_id, token, remote_id, secret_enc = _row(env, connection_id, model)
        url = url_for(public_url, token)
        current: dict[str, Any] | None = None
        if remote_id is not None:
            try:
                current = client.get(f"/webhooks/{remote_id}", {"fields": WEBHOOK_FIELDS})["data"]
            except NotFound:
                current = None
        now = runtime.remote_now(connection_id)
        if current is not None and (current.get("url") != url or current.get("fields") != resource.fields):
            client.request("DELETE", f"/webhooks/{current['id']}")
            current = None
        if current is None:
            body = {
                "data": {
                    "url": url,
                    "model": model,
                    "fields": resource.fields,
                    "events": EVENTS,
                    "expires_at": (now + LIFETIME).isoformat(timespec="seconds"),
                }
            }
            created = client.request(
                "POST", "/webhooks", params={"fields": WEBHOOK_FIELDS}, json=body
            ).json()["data"]
            _save(env, row_id, created, runtime.secrets.encrypt(str(created["shared_secret"])))
            log.info("created the Clio %s webhook %s for connection %s", model, created["id"], connection_id)
            continue
        status = str(current.get("status") or "")
        if status in ("pending", "suspended") and secret_enc is not None:
            client.request(
                "PUT",
                f"/webhooks/{current['id']}/activate",
                headers={"X-Hook-Secret": runtime.secrets.decrypt(secret_enc)},
            )
            current["status"] = "enabled"
        expires = _ts(current.get("expires_at"))
        if expires is None or expires - now < RENEW_WHEN_LEFT:
            renewed = client.request(
                "PATCH",
                f"/webhooks/{current['id']}",
                params={"fields": WEBHOOK_FIELDS},
                json={"data": {"expires_at": (now + LIFETIME).isoformat(timespec="seconds")}},
            ).json()["data"]
            current.update(renewed)
            log.info(
                "renewed the Clio %s webhook %s until %s", model, current["id"], current.get("expires_at")
            )
        _save(env, row_id, current, None)


def _save(env: SyncEnv, row_id: uuid.UUID, data: dict[str, Any], secret_encrypted: str | None) -> None:
    with unit_of_work(env.db.writer) as session:
        row = session.get(SyncRemoteWebhook, row_id)
        if row is None:
            return
        row.remote_id = int(data["id"])
        row.status = str(data.get("status") or row.status)
        row.expires_at = _ts(data.get("expires_at")) or row.expires_at
        if secret_encrypted is not None:
            row.secret_encrypted = secret_encrypted
        row.last_error = None


def remove(env: SyncEnv, connection_id: uuid.UUID) -> None:
    """Delete our webhooks in Clio (best effort: a gone webhook is fine) and forget them."""
    runtime = clio_runtime(env)
    with unit_of_work(env.db.reader) as session:
        rows = list(
            session.scalars(select(SyncRemoteWebhook).where(SyncRemoteWebhook.connection_id == connection_id))
        )
    if not rows:
        return
    client = ClioClient.for_connection(runtime, connection_id, bulk=True)
    for row in rows:
        if row.remote_id is not None:
            try:
                client.request("DELETE", f"/webhooks/{row.remote_id}")
            except NotFound:
                pass
    with unit_of_work(env.db.writer) as session:
        session.execute(delete(SyncRemoteWebhook).where(SyncRemoteWebhook.connection_id == connection_id))


# --- the receiver ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def _signature_ok(secret: str, body: bytes, given: str | None) -> bool:
    if not given:
        return False
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    candidates = (digest.hex(), base64.b64encode(digest).decode())
    return any(hmac.compare_digest(given.strip(), c) for c in candidates)


def receive(env: SyncEnv, token: str, headers: dict[str, str], body: bytes) -> Answer:
    runtime = clio_runtime(env)
    with unit_of_work(env.db.reader) as session:
        row = session.scalar(select(SyncRemoteWebhook).where(SyncRemoteWebhook.url_token == token))
        conn = session.get(Connection, row.connection_id) if row is not None else None
        known = row is not None and conn is not None and conn.state == CONNECTED
        row_id = row.id if row is not None else None
        model = row.model if row is not None else ""
        secret_enc = row.secret_encrypted if row is not None else None
        connection_id = conn.id if conn is not None else None
    if not known or row_id is None or connection_id is None:
        # 410 tells Clio to stop: nobody here wants this webhook any more.
        return Answer(410, {"detail": "no connected webhook has this address"}, {})
    handshake = headers.get("x-hook-secret")
    if handshake:
        with unit_of_work(env.db.writer) as session:
            live = session.get(SyncRemoteWebhook, row_id)
            if live is not None:
                live.status = "enabled"
                if live.secret_encrypted is None:
                    live.secret_encrypted = runtime.secrets.encrypt(handshake)
        return Answer(200, {"status": "activated"}, {"X-Hook-Secret": handshake})
    if secret_enc is None:
        return Answer(503, {"detail": "this webhook's secret is not stored yet; retry"}, {"Retry-After": "5"})
    if not _signature_ok(runtime.secrets.decrypt(secret_enc), body, headers.get("x-hook-signature")):
        return Answer(401, {"detail": "X-Hook-Signature does not match the body"}, {})
    try:
        payload = json.loads(body)
        data = payload["data"]
        event = str(payload.get("meta", {}).get("event") or "updated")
        remote_id = int(data["id"])
    except (ValueError, KeyError, TypeError):
        return Answer(400, {"detail": "the delivery is not Clio's {data, meta} JSON"}, {})
    spec = SPECS[model]
    with unit_of_work(env.db.writer) as session:
        fresh = session.scalar(
            dialect_insert(session)(SyncInboxEntry)
            .values(
                connection_id=connection_id,
                digest=hashlib.sha256(body).hexdigest(),
                model=model,
                event=event[:30],
                remote_id=remote_id,
                received_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["connection_id", "digest"])
            .returning(SyncInboxEntry.id)
        )
        if fresh is None:
            return Answer(200, {"status": "duplicate"}, {})
        live = session.get(SyncRemoteWebhook, row_id)
        if live is not None:
            live.deliveries += 1
            live.last_delivery_at = utcnow()
            live.status = "enabled"
        record = None if event == "deleted" else REMOTES[model].parse(data)
        if record is None:
            capture.signal_changed(session, spec, connection_id, remote_id, trigger=f"webhook:{event}")
        else:
            capture.observe(session, spec, connection_id, record, trigger=f"webhook:{event}")
    return Answer(200, {"status": "received"}, {})

"""How Clio's changes reach us: polling where Clio cannot reach us, lost, duplicated and reordered
webhooks healed by polling, forged deliveries refused, webhooks renewed and re-created, deletions
found by the full reconcile."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from tests.factories import create_contact
from tests.sync.conftest import Connected, wait_for


def _make_clio_contact(connected: Connected, last_name: str) -> int:
    r = connected.clio.user.post(
        "/contacts", json={"data": {"type": "Person", "first_name": "Poll", "last_name": last_name}}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["data"]["id"])


def _local_last_name(connected: Connected, local_id: str) -> str:
    return str(connected.api.get(f"/api/v1/contacts/{local_id}").json()["last_name"])


def test_polling_alone_syncs_both_ways(polled: Connected) -> None:
    assert polled.health()["webhooks"] == []  # Clio cannot reach us: no webhooks
    remote_id = _make_clio_contact(polled, "Polled")
    local_id = polled.local_id("contact", remote_id, timeout=15)
    assert _local_last_name(polled, local_id) == "Polled"
    r = polled.clio.user.patch(f"/contacts/{remote_id}", json={"data": {"last_name": "Polled-Again"}})
    assert r.status_code == 200
    wait_for(lambda: _local_last_name(polled, local_id) == "Polled-Again", 15, "the edit through polling")
    contact = create_contact(polled.api, first_name="Out", last_name="Bound")
    polled.remote_id("contact", contact["id"])  # our side never needed webhooks
    stream = next(s for s in polled.health()["streams"] if s["entity"] == "contact")
    assert stream["last_poll_error"] is None
    assert stream["poll_lag_seconds"] is not None


def test_lost_duplicated_and_reordered_webhooks_are_healed_by_polling(connected: Connected) -> None:
    connected.settings(poll_interval_seconds=1, poll_lag_seconds=2)
    connected.run_now("sync.poll")
    connected.clio.faults(
        seed=11, webhook_drop_rate=0.4, webhook_duplicate_rate=0.3, webhook_reorder_rate=0.3
    )
    remote_ids = [_make_clio_contact(connected, f"Faulty{n}") for n in range(6)]
    for n, remote_id in enumerate(remote_ids):
        for version in range(3):
            r = connected.clio.user.patch(
                f"/contacts/{remote_id}", json={"data": {"first_name": f"V{n}.{version}"}}
            )
            assert r.status_code == 200
    local_ids = [connected.local_id("contact", rid, timeout=20) for rid in remote_ids]

    def converged() -> bool:
        return all(
            connected.api.get(f"/api/v1/contacts/{lid}").json()["first_name"] == f"V{n}.2"
            for n, lid in enumerate(local_ids)
        )

    wait_for(converged, 30, "every contact's last edit here")
    names = [
        c["last_name"] for c in connected.api.get("/api/v1/contacts", params={"limit": 200}).json()["data"]
    ]
    assert sorted(n for n in names if n.startswith("Faulty")) == sorted(
        f"Faulty{n}" for n in range(6)
    )  # no duplicates
    with connected.clio.admin() as admin:
        injected = admin.get("/faults").json()["injected"]
    assert injected.get("webhook_drop", 0) + injected.get("webhook_duplicate", 0) > 0, injected


def test_forged_or_unknown_deliveries_are_refused(connected: Connected) -> None:
    token = _webhook_token(connected)
    url = f"{connected.server.url}/hooks/clio/{token}"
    body = json.dumps(
        {"data": {"id": 1, "etag": '"x"'}, "meta": {"event": "deleted", "webhook_id": 1}}
    ).encode()
    forged = httpx.post(
        url, content=body, headers={"X-Hook-Signature": hmac.new(b"wrong", body, hashlib.sha256).hexdigest()}
    )
    assert forged.status_code == 401
    unsigned = httpx.post(url, content=body)
    assert unsigned.status_code == 401
    unknown = httpx.post(f"{connected.server.url}/hooks/clio/not-a-token", content=body)
    assert unknown.status_code == 410  # tells Clio to stop sending
    echoed = httpx.post(url, content=b"{}", headers={"X-Hook-Secret": "abc123"})
    assert (echoed.status_code, echoed.headers["x-hook-secret"]) == (200, "abc123")


def _webhook_token(connected: Connected) -> str:
    from sqlalchemy import select

    from casebridge.db.session import unit_of_work
    from casebridge.models import SyncRemoteWebhook

    with unit_of_work(connected.backend.db.reader) as session:
        return str(session.scalars(select(SyncRemoteWebhook.url_token)).first())


def _clio_webhooks(connected: Connected) -> list[dict[str, object]]:
    r = connected.clio.user.get("/webhooks", params={"fields": "id,model,status,expires_at,url"})
    rows: list[dict[str, object]] = r.json()["data"]
    return rows


def test_webhooks_are_renewed_before_they_expire_and_recreated_when_lost(connected: Connected) -> None:
    first = {w["model"]: w for w in _clio_webhooks(connected)}
    assert set(first) == {"contact", "matter"}
    assert all(w["status"] == "enabled" for w in first.values())
    connected.clio.advance_clock(16 * 86400)  # past half of the 30 days we asked for
    connected.run_now("sync.webhooks")
    wait_for(
        lambda: all(w["expires_at"] != first[w["model"]]["expires_at"] for w in _clio_webhooks(connected)),  # type: ignore[index]
        what="renewed webhooks",
    )
    contact_hook = first["contact"]
    assert connected.clio.user.delete(f"/webhooks/{contact_hook['id']}").status_code == 204
    connected.run_now("sync.webhooks")

    def recreated() -> bool:
        hooks = {w["model"]: w for w in _clio_webhooks(connected)}
        return (
            "contact" in hooks
            and hooks["contact"]["id"] != contact_hook["id"]
            and hooks["contact"]["status"] == "enabled"
        )

    wait_for(recreated, what="the lost webhook re-created")
    remote_id = _make_clio_contact(connected, "AfterRecreate")
    connected.local_id("contact", remote_id)  # delivered through the new webhook (polls are a minute apart)


def test_a_full_reconcile_finds_deletions_and_drift(connected: Connected) -> None:
    kept = create_contact(connected.api, first_name="Kept", last_name="One")
    gone = create_contact(connected.api, first_name="Gone", last_name="One")
    kept_remote = connected.remote_id("contact", kept["id"])
    gone_remote = connected.remote_id("contact", gone["id"])
    connected.settle()
    # Changes Clio never tells us about: webhooks off for a while.
    connected.clio.faults(webhook_drop_rate=1.0)
    assert connected.clio.user.delete(f"/contacts/{gone_remote}").status_code == 204
    assert (
        connected.clio.user.patch(
            f"/contacts/{kept_remote}", json={"data": {"last_name": "Drifted"}}
        ).status_code
        == 200
    )
    connected.clio.faults()
    connected.run_now("sync.full")
    wait_for(lambda: _local_last_name(connected, kept["id"]) == "Drifted", what="the drift pulled")
    wait_for(
        lambda: connected.status("contact", gone["id"])["state"] == "unlinked", what="the deletion found"
    )

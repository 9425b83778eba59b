"""The connection: OAuth through the sandbox, tokens refreshed before expiry and once on a 401, a revoked
grant and re-authorization, disconnecting, bad input, and the health report."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update

from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.kit.crypto import SecretBox
from casebridge.models import Connection
from tests.factories import create_contact
from tests.sync.conftest import CLIENT_ID, CLIENT_SECRET, Connected, wait_for


def _tokens(connected: Connected) -> tuple[str, Any]:
    box = SecretBox(connected.backend.settings.resolved_secret_key)
    with unit_of_work(connected.backend.db.reader) as session:
        conn = session.get(Connection, uuid.UUID(connected.id))
        assert conn is not None
        assert conn.access_token_encrypted is not None
        return box.decrypt(conn.access_token_encrypted), conn.token_expires_at


def test_the_connection_reads_who_authorized_it(connected: Connected) -> None:
    conn = connected.api.get(f"/api/v1/connections/{connected.id}").json()
    assert conn["state"] == "connected"
    assert conn["remote_user_name"]
    assert conn["api_version"] == "4.0.9"
    assert conn["settings"]["conflict_policy"] == {"contact": "hold", "matter": "hold"}
    token, expires = _tokens(connected)
    assert token
    assert expires > utcnow() + timedelta(days=29)  # Clio's 30-day tokens
    with unit_of_work(connected.backend.db.reader) as session:  # at rest, only ciphertext
        stored = session.get(Connection, uuid.UUID(connected.id))
        assert stored is not None
        assert stored.access_token_encrypted is not None
        assert stored.refresh_token_encrypted is not None
        assert token not in stored.access_token_encrypted
        assert CLIENT_SECRET not in stored.client_secret_encrypted


def test_a_token_near_its_expiry_is_refreshed_first(connected: Connected) -> None:
    old, _ = _tokens(connected)
    with unit_of_work(connected.backend.db.writer) as session:
        session.execute(
            update(Connection)
            .where(Connection.id == uuid.UUID(connected.id))
            .values(token_expires_at=utcnow() + timedelta(hours=1))
        )
    from casebridge.sync.runtime import clio_runtime, sync_env

    clio_runtime(sync_env(connected.backend.db, connected.backend.settings)).forget_token(
        uuid.UUID(connected.id)
    )
    contact = create_contact(connected.api, first_name="Fresh", last_name="Token")
    connected.remote_id("contact", contact["id"])
    new, expires = _tokens(connected)
    assert new != old
    assert expires > utcnow() + timedelta(days=29)


def test_an_expired_token_gets_one_refresh_on_a_401(connected: Connected) -> None:
    old, _ = _tokens(connected)
    connected.clio.advance_clock(31 * 86400)  # Clio's clock: our 30-day token has expired there
    contact = create_contact(connected.api, first_name="After", last_name="Expiry")
    connected.remote_id("contact", contact["id"])
    assert _tokens(connected)[0] != old
    assert connected.clio.user.get("/users/who_am_i").status_code == 401  # the person's token expired too


def test_a_revoked_grant_waits_for_reauthorization_then_catches_up(connected: Connected) -> None:
    token, _ = _tokens(connected)
    r = httpx.post(
        f"{connected.clio.url}/oauth/deauthorize",
        data={"token": token},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200
    contact = create_contact(connected.api, first_name="Waits", last_name="ForGrant")
    wait_for(
        lambda: (
            connected.api.get(f"/api/v1/connections/{connected.id}").json()["state"]
            == "needs_reauthorization"
        ),
        what="the connection to need authorization",
    )
    health = connected.health()
    assert health["healthy"] is False
    assert health["rate_limit"]["in_flight"] == 0  # the refresh that failed gave its permit back
    r = connected.api.post(f"/api/v1/connections/{connected.id}/authorize")
    assert r.status_code == 200, r.text
    with httpx.Client(follow_redirects=True, timeout=30) as browser:
        page = browser.get(r.json()["authorize_url"] + "&sandbox_auto_approve=true")
    assert page.status_code == 200
    assert "Connected to Clio" in page.text
    connected.remote_id("contact", contact["id"])  # the change that waited went through


def test_disconnect_stops_syncing_deletes_webhooks_and_revokes(connected: Connected) -> None:
    token, _ = _tokens(connected)
    assert len(connected.clio.user.get("/webhooks").json()["data"]) == 2
    r = connected.api.delete(f"/api/v1/connections/{connected.id}")
    assert r.status_code == 204
    assert connected.clio.user.get("/webhooks").json()["data"] == []
    revoked = httpx.get(
        f"{connected.clio.url}/api/v4/users/who_am_i", headers={"Authorization": f"Bearer {token}"}
    )
    assert revoked.status_code == 401
    contact = create_contact(connected.api, first_name="Not", last_name="Synced")
    connected.settle()
    assert connected.status("contact", contact["id"])["state"] == "not_synced"
    assert connected.api.get(f"/api/v1/connections/{connected.id}").json()["state"] == "disconnected"
    assert connected.api.delete(f"/api/v1/connections/{uuid.uuid4()}").status_code == 404


def test_bad_input_gets_clear_errors(connected: Connected) -> None:
    api = connected.api
    second = api.post(
        "/api/v1/connections",
        json={
            "base_url": connected.clio.url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": "http://x/cb",
        },
    )
    assert second.status_code == 409
    assert "already connected" in second.json()["detail"]
    both = api.post(
        "/api/v1/connections",
        json={"region": "eu", "base_url": "https://x.example", "client_id": "a", "client_secret": "b"},
    )
    assert both.status_code == 422
    bad_region = api.post(
        "/api/v1/connections", json={"region": "mars", "client_id": "a", "client_secret": "b"}
    )
    assert bad_region.status_code == 422
    assert bad_region.json()["errors"][0]["field"] == "body.region"
    bad_policy = api.patch(
        f"/api/v1/connections/{connected.id}",
        json={"settings": {"conflict_policy": {"contact": "coin_toss"}}},
    )
    assert bad_policy.status_code == 422
    assert (
        api.get(f"/api/v1/connections/{connected.id}").json()["settings"]["conflict_policy"]["contact"]
        == "hold"
    )
    unknown = httpx.get(f"{connected.server.url}/oauth/clio/callback", params={"code": "c", "state": "nope"})
    assert unknown.status_code == 400
    declined = httpx.get(f"{connected.server.url}/oauth/clio/callback", params={"error": "access_denied"})
    assert declined.status_code == 400
    assert "did not authorize" in declined.text
    bad_state = api.get(f"/api/v1/connections/{connected.id}/links", params={"state": "odd"})
    assert bad_state.status_code == 422
    nothing = api.post(f"/api/v1/contacts/{uuid.uuid4()}/sync", json={})
    assert nothing.status_code == 404


def test_health_reports_webhooks_polls_budget_and_records(connected: Connected) -> None:
    create_contact(connected.api, first_name="Health", last_name="Check")
    connected.settle()
    connected.run_now("sync.poll")
    wait_for(lambda: all(s["last_poll_at"] for s in connected.health()["streams"]), what="a poll")
    health = connected.health()
    assert health["healthy"] is True, health["problems"]
    assert {w["model"] for w in health["webhooks"]} == {"contact", "matter"}
    assert all(w["expires_at"] for w in health["webhooks"])
    assert health["rate_limit"]["limit"] == 100_000
    assert health["rate_limit"]["requests_sent"] > 0
    assert health["links"]["contact"]["linked"] >= 1
    assert health["open_conflicts"] == 0
    assert health["lag_seconds"] == 0
    # A change from Clio waits while no worker runs: the lag shows how long.
    remote_id = connected.clio.records("contacts")[0]["id"]
    with connected.workers.paused():
        r = connected.clio.user.patch(f"/contacts/{remote_id}", json={"data": {"first_name": "Lagging"}})
        assert r.status_code == 200, r.text
        wait_for(lambda: connected.health()["queue"].get("sync.reconcile"), what="the webhook's reconcile")
        time.sleep(1.2)
        assert connected.health()["lag_seconds"] >= 1.0
    connected.settle()
    assert connected.health()["lag_seconds"] == 0


def test_a_record_clio_keeps_failing_shows_its_error_and_next_retry_then_recovers(
    connected: Connected,
) -> None:
    connected.settle()
    connected.clio.faults(error_rate=1.0)  # every API request answered 500/502/503
    contact = create_contact(connected.api, first_name="Often", last_name="Refused")
    status = connected.wait(
        lambda: (s := connected.status("contact", contact["id"]))["state"] == "error" and s,
        what="the link to show its error",
    )
    link = status["link"]
    assert link["error_count"] >= 3
    # The first attempt's POST may have reached Clio: the next ones look for the record first.
    assert "/contacts answered 50" in link["error"]
    assert link["next_retry_at"] is not None
    errors = [j for j in status["journal"] if j["action"] == "error"]
    assert errors
    calls = [call for j in errors for call in j["detail"]["calls"]]
    assert calls[-1].startswith("POST /contacts 50")  # the oldest entry: the first attempt's create
    assert all(" /contacts 50" in call for call in calls)
    health = connected.health()
    assert any(e["summary"] == errors[0]["summary"] for e in health["recent_errors"])
    assert health["links"]["contact"]["error"] == 1
    assert health["healthy"] is False

    connected.clio.faults()
    r = connected.api.post(f"/api/v1/connections/{connected.id}/links/{link['id']}/retry")
    assert r.status_code == 202, r.text
    remote_id = connected.remote_id("contact", contact["id"])
    connected.settle()
    after = connected.status("contact", contact["id"])
    assert after["state"] == "linked"
    assert (after["link"]["error"], after["link"]["next_retry_at"]) == (None, None)
    assert [c["id"] for c in connected.clio.records("contacts")] == [remote_id]

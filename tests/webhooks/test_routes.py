"""The webhooks API: one-time secrets, validation with field paths, roles, concurrency and events."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.kit.context import Role
from casebridge.models import EventSubscription, Webhook
from casebridge.webhooks.schemas import KNOWN_EVENT_TYPES, redact_url
from casebridge.webhooks.signing import compute, parse, sign, verify
from casebridge.webhooks.subscriber import _retry_after
from tests.conftest import Backend, MakeClient

URL = "https://hooks.example.com/casebridge"
DOCS = Path(__file__).resolve().parents[2] / "docs"


def create(api: httpx.Client, **body: Any) -> httpx.Response:
    return api.post("/api/v1/webhooks", json={"url": URL, "event_types": ["matter.*"], **body})


def errors(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return {e["field"]: e["message"] for e in r.json()["errors"]}


def test_secret_is_shown_once_and_stored_encrypted(api: httpx.Client, clean: Backend) -> None:
    r = create(api, description="PMS sync", filter={"==": [{"var": "event.entity_type"}, "matter"]})
    assert r.status_code == 201, r.text
    made = r.json()
    secret = made["secret"]
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    assert r.headers["Location"].endswith(f"/api/v1/webhooks/{made['id']}")
    assert r.headers["ETag"] == made["etag"]
    assert made["active"] is True
    assert made["consecutive_failures"] == 0
    assert made["event_types"] == ["matter.*"]

    got = api.get(f"/api/v1/webhooks/{made['id']}")
    assert got.status_code == 200
    assert "secret" not in got.json()
    assert secret not in got.text
    listed = api.get("/api/v1/webhooks")
    assert [w["id"] for w in listed.json()["data"]] == [made["id"]]
    assert "secret" not in listed.json()["data"][0]
    assert secret not in listed.text

    with unit_of_work(clean.db.reader) as session:
        row = session.get(Webhook, uuid.UUID(made["id"]))
        assert row is not None
        assert secret not in row.secret_encrypted
        sub = session.get(EventSubscription, row.subscription_id)
        assert sub is not None
        assert sub.kind == "webhook"
        assert sub.active
        assert sub.target_id == made["id"]


def test_url_rules(api: httpx.Client) -> None:
    assert "body.url" in errors(create(api, url="ftp://example.com/x"))
    assert "body.url" in errors(create(api, url="not a url"))
    assert "body.url" in errors(create(api, url="/relative/path"))
    message = errors(create(api, url="http://example.com/hook"))["body.url"]
    assert "https" in message
    assert "body.url" in errors(create(api, url="https://example.com/a#frag"))
    for ok in (
        "http://localhost:8080/h",
        "http://127.0.0.1:9/h",
        "http://[::1]:9/h",
        "https://example.com/h?token=x",
    ):
        assert create(api, url=ok).status_code == 201, ok


def test_event_type_patterns_are_checked_against_the_catalogue(api: httpx.Client) -> None:
    found = errors(create(api, event_types=["matter.*", "contact.craeted"]))
    assert list(found) == ["body.event_types.1"]
    assert "contact.created" in found["body.event_types.1"]  # did you mean ...
    assert "body.event_types.0" in errors(create(api, event_types=["Matter.*"]))
    assert "body.event_types.0" in errors(create(api, event_types=["invoice.*"]))
    assert "body.event_types.0" in errors(create(api, event_types=["matter.**"]))
    assert "body.event_types" in errors(create(api, event_types=[]))
    ok = create(api, event_types=["*", "matter.status_changed", "matter.status_changed", "activity.*"])
    assert ok.status_code == 201, ok.text
    assert ok.json()["event_types"] == ["*", "matter.status_changed", "activity.*"]  # duplicates dropped


def test_filter_errors_carry_their_path(api: httpx.Client) -> None:
    bad = {"and": [{"==": [1]}, {"nope": [1, 2]}]}
    found = errors(create(api, filter=bad))
    assert set(found) == {"body.filter.and.0.==", "body.filter.and.1.nope"}
    assert "body.filter" in errors(create(api, filter="event.type == 'x'"))
    assert "body.secret" in errors(create(api, secret="mine"))  # the secret is always generated


def test_only_admins_and_integrations_manage_webhooks(make_client: MakeClient) -> None:
    for role in (Role.STAFF, Role.READ_ONLY):
        client = make_client(role)
        assert client.get("/api/v1/webhooks").status_code == 403
        assert create(client).status_code == 403
    integration = make_client(Role.INTEGRATION)
    assert create(integration).status_code == 201
    assert len(integration.get("/api/v1/webhooks").json()["data"]) == 1


def test_patch_with_if_match_and_conditional_get(api: httpx.Client) -> None:
    made = create(api).json()
    path = f"/api/v1/webhooks/{made['id']}"
    assert api.get(path, headers={"If-None-Match": made["etag"]}).status_code == 304

    stale = api.patch(path, json={"description": "x"}, headers={"If-Match": '"stale"'})
    assert stale.status_code == 412
    r = api.patch(
        path,
        json={"description": "Finance", "event_types": ["activity.billed"], "filter": None},
        headers={"If-Match": made["etag"]},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["description"] == "Finance"
    assert out["event_types"] == ["activity.billed"]
    assert out["etag"] != made["etag"]
    assert r.headers["ETag"] == out["etag"]
    assert "secret" not in out
    assert api.patch(path, json={"description": "y"}, headers={"If-Match": made["etag"]}).status_code == 412

    assert "body.url" in errors(api.patch(path, json={"url": None}))
    assert "body.event_types" in errors(api.patch(path, json={"event_types": None}))
    assert "body.filter.!" in errors(api.patch(path, json={"filter": {"!": [1, 2]}}))
    assert "body.url" in errors(api.patch(path, json={"url": "http://example.org/h"}))
    assert api.patch(f"/api/v1/webhooks/{uuid.uuid4()}", json={}).status_code == 404


def test_pause_and_resume_via_patch(api: httpx.Client, clean: Backend) -> None:
    made = create(api).json()
    path = f"/api/v1/webhooks/{made['id']}"
    paused = api.patch(path, json={"active": False}).json()
    assert paused["active"] is False
    assert paused["disabled_at"] is not None
    assert "paused by" in paused["disabled_reason"]
    with unit_of_work(clean.db.reader) as session:
        assert session.scalars(select(EventSubscription.active)).all() == [False]
    assert api.get("/api/v1/webhooks", params={"active": "false"}).json()["data"][0]["id"] == made["id"]
    assert api.get("/api/v1/webhooks", params={"active": "true"}).json()["data"] == []
    resumed = api.patch(path, json={"active": True}).json()
    assert resumed["active"] is True
    assert resumed["disabled_reason"] is None
    assert resumed["disabled_at"] is None
    with unit_of_work(clean.db.reader) as session:
        assert session.scalars(select(EventSubscription.active)).all() == [True]


def test_delete_removes_webhook_and_subscription(api: httpx.Client, clean: Backend) -> None:
    made = create(api).json()
    path = f"/api/v1/webhooks/{made['id']}"
    assert api.delete(path, headers={"If-Match": '"stale"'}).status_code == 412
    r = api.delete(path, headers={"If-Match": made["etag"]})
    assert r.status_code == 204, r.text
    assert api.get(path).status_code == 404
    assert api.delete(path).status_code == 404
    with unit_of_work(clean.db.reader) as session:
        assert session.scalars(select(EventSubscription)).all() == []


def test_rotate_secret_shows_the_new_one_once(api: httpx.Client) -> None:
    made = create(api).json()
    path = f"/api/v1/webhooks/{made['id']}"
    r = api.post(f"{path}/rotate-secret")
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != made["secret"]
    assert rotated["etag"] != made["etag"]
    assert "secret" not in api.get(path).json()
    assert api.post(f"{path}/rotate-secret", headers={"If-Match": made["etag"]}).status_code == 412


def test_events_about_webhooks_never_carry_the_secret(api: httpx.Client) -> None:
    made = create(api, url="https://user:pw@hooks.example.com/in?token=abc123").json()
    path = f"/api/v1/webhooks/{made['id']}"
    api.patch(path, json={"description": "changed", "url": "https://hooks.example.com/v2?token=def456"})
    rotated = api.post(f"{path}/rotate-secret").json()
    api.delete(path)
    r = api.get("/api/v1/events", params={"type": "webhook.*"})
    events = r.json()["data"]
    assert [e["type"] for e in events] == [
        "webhook.created",
        "webhook.updated",
        "webhook.secret_rotated",
        "webhook.deleted",
    ]
    text = json.dumps(events)
    for leaked in (made["secret"], rotated["secret"], "abc123", "def456", "pw@", "secret_encrypted"):
        assert leaked not in text
    assert events[0]["changes"]["url"]["new"] == "https://hooks.example.com/in?…"
    assert events[0]["entity_type"] == "webhook"
    assert events[0]["entity_id"] == made["id"]


def test_redact_url() -> None:
    assert redact_url("https://u:p@h.example:8443/a/b?x=1") == "https://h.example:8443/a/b?…"
    assert redact_url("http://[::1]:9/h") == "http://[::1]:9/h"


def test_unknown_webhook_endpoints_404(api: httpx.Client) -> None:
    missing = "6f1c2b1e-0000-4000-8000-000000000000"
    assert api.post(f"/api/v1/webhooks/{missing}/ping").status_code == 404
    assert api.get(f"/api/v1/webhooks/{missing}/deliveries").status_code == 404
    assert api.post(f"/api/v1/webhooks/{missing}/deliveries/1/redeliver").status_code == 404
    assert api.post(f"/api/v1/webhooks/{missing}/redeliver", params={"since_event_id": 0}).status_code == 404
    made = create(api).json()
    assert api.post(f"/api/v1/webhooks/{made['id']}/deliveries/99/redeliver").status_code == 404


def test_known_event_types_cover_the_documented_catalogue() -> None:
    """docs/events.md is the catalogue integrators read: what it lists is exactly what can be subscribed to."""
    documented: set[str] = set()
    for line in (DOCS / "events.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        prefix = ""
        for name in re.findall(r"`([a-z_]*\.[a-z_]+)`", line.split("|")[1]):
            if name.startswith("."):  # `linked_service.created` / `.updated`: same prefix as before
                name = prefix + name
            prefix = name.split(".")[0]
            documented.add(name)
    assert documented, "no catalogue rows found in docs/events.md"
    assert documented - set(KNOWN_EVENT_TYPES) == set(), "documented but not subscribable"
    assert set(KNOWN_EVENT_TYPES) - documented == set(), "subscribable but not documented"


# --- signatures ------------------------------------------------------------------------------------------


def test_sign_and_verify() -> None:
    body = b'{"id": 1}'
    header = sign("whsec_test", body, t=1_700_000_000)
    t, sigs = parse(header)
    assert t == 1_700_000_000
    assert sigs == [compute("whsec_test", body, 1_700_000_000)]
    assert verify("whsec_test", body, header, now=1_700_000_100)
    assert not verify("whsec_other", body, header, now=1_700_000_100)
    assert not verify("whsec_test", body + b" ", header, now=1_700_000_100)
    assert not verify("whsec_test", body, header, now=1_700_000_000 + 301)  # too old: a replay
    assert not verify("whsec_test", body, header, now=1_700_000_000 - 301)  # from the future
    assert verify("whsec_test", body, header, tolerance=600, now=1_700_000_000 + 301)
    assert not verify("whsec_test", body, "garbage")
    assert not verify("whsec_test", body, "t=1700000000")
    # several v1 signatures (for example during a key change): any one valid is enough
    other = f"t=1700000000,v1={'0' * 64},v1={sigs[0]},v0=ignored"
    assert verify("whsec_test", body, other, now=1_700_000_000)


@pytest.mark.parametrize("header", ["", "t=,v1=", "v1=abc", "t=abc,v1=def", "t=1,v1"])
def test_malformed_signature_headers_never_verify(header: str) -> None:
    assert not verify("s", b"x", header, now=1)


def test_retry_after_values() -> None:
    assert _retry_after("120") == 120
    assert _retry_after("0") == 0
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    assert _retry_after(str(10**9)) == 24 * 3600  # capped: a receiver cannot park an event for ever
    in_a_minute = _retry_after(format_datetime(utcnow() + timedelta(seconds=60), usegmt=True))
    assert in_a_minute is not None
    assert 55 <= in_a_minute <= 60
    assert _retry_after(format_datetime(utcnow() - timedelta(seconds=60), usegmt=True)) == 0

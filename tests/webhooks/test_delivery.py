"""Webhook delivery against a real receiver on loopback: failures, timeouts, recovery, signatures,
order per entity, Retry-After, 410, auto-disable and re-enable, filters, ping and redelivery."""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from casebridge.db.session import unit_of_work
from casebridge.jobs.worker import Worker
from casebridge.models import Event, EventDelivery, Webhook
from casebridge.webhooks import subscriber
from tests.conftest import Backend
from tests.factories import create_contact, create_matter
from tests.webhooks.conftest import SENDER_TIMEOUT, MakeWebhook
from tests.webhooks.receiver import OK, Receiver, fail, hang

pytestmark = pytest.mark.usefixtures("fast")


def wait_for(predicate: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def events_after(backend: Backend, after: int, prefixes: tuple[str, ...]) -> dict[str, list[int]]:
    """Event ids per entity, in id order, of the types the webhook subscribes to."""
    out: dict[str, list[int]] = defaultdict(list)
    with unit_of_work(backend.db.reader) as session:
        for ev in session.scalars(select(Event).where(Event.id > after).order_by(Event.id)):
            if ev.type.startswith(prefixes):
                out[ev.entity_id].append(ev.id)
    return dict(out)


def newest_event_id(backend: Backend) -> int:
    with unit_of_work(backend.db.reader) as session:
        return max(session.scalars(select(Event.id)).all(), default=0)


def webhook_row(backend: Backend, webhook_id: str) -> Webhook:
    with unit_of_work(backend.db.reader) as session:
        row = session.get(Webhook, uuid.UUID(webhook_id))
        assert row is not None
        return row


def deliveries(api: httpx.Client, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.get(
            f"/api/v1/webhooks/{webhook_id}/deliveries",
            params={**params, "limit": 7, **({"cursor": cursor} if cursor else {})},
        )
        assert page.status_code == 200, page.text
        rows += page.json()["data"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return rows


def make_traffic(api: httpx.Client) -> None:
    """About twenty events over several contacts and matters."""
    contacts = [create_contact(api) for _ in range(4)]
    for i in range(3):
        for c in contacts:
            r = api.patch(f"/api/v1/contacts/{c['id']}", json={"notes": f"edit {i}"})
            assert r.status_code == 200, r.text
    matters = [create_matter(api, client_id=contacts[n]["id"]) for n in range(2)]
    for m in matters:
        assert api.patch(f"/api/v1/matters/{m['id']}", json={"description": "more"}).status_code == 200
    assert api.delete(f"/api/v1/contacts/{contacts[3]['id']}").status_code == 200


def test_a_receiver_that_fails_times_out_and_recovers_gets_every_event_signed_in_order(
    api: httpx.Client, clean: Backend, worker: Worker, receiver: Receiver, make_webhook: MakeWebhook
) -> None:
    receiver.then(*[fail(500)] * 5, *[hang(SENDER_TIMEOUT + 1.5)] * 3, fail(502))  # then 200 for ever
    hook = make_webhook(receiver.url)
    start = newest_event_id(clean)
    make_traffic(api)
    expected = events_after(clean, start, ("contact.", "matter."))
    wanted = {i for ids in expected.values() for i in ids}
    assert len(wanted) >= 20

    wait_for(lambda: wanted <= receiver.delivered_ids(), what="every event to arrive")
    assert receiver.delivered_ids() == wanted  # nothing else (webhook.created is not subscribed)

    got = receiver.all()
    assert all(r.signed_by(hook["secret"]) for r in got), "every request carries a valid signature"
    assert all(r.headers["content-type"] == "application/json" for r in got)
    assert all(r.headers["user-agent"].startswith("Casebridge-Webhooks/") for r in got)
    for r in got:
        assert r.event["id"] == r.event_id
        assert r.headers["casebridge-event-type"] == r.event["type"]
        assert set(r.event) == {
            "id",
            "type",
            "entity_type",
            "entity_id",
            "occurred_at",
            "actor",
            "changes",
            "request_id",
        }
    assert receiver.first_success_order() == expected  # in order per entity
    assert len(got) > len(wanted)  # the failures were retried: duplicates are possible, ids dedupe them

    def settled() -> bool:
        log = deliveries(api, hook["id"])
        return len(log) == len(got) and {d["event_id"] for d in log if d["succeeded"]} == wanted

    wait_for(settled, what="the delivery log to show every attempt")
    log = deliveries(api, hook["id"])
    assert [d["id"] for d in log] == sorted((d["id"] for d in log), reverse=True)  # newest first
    failures = deliveries(api, hook["id"], succeeded="false")
    assert sorted(d["status_code"] for d in failures if d["status_code"]) == [500] * 5 + [502]
    timeouts = [d for d in failures if d["status_code"] is None]
    assert len(timeouts) == 3
    assert all("timed out" in d["error"] for d in timeouts)
    assert all(d["latency_ms"] >= SENDER_TIMEOUT * 1000 - 50 for d in timeouts)
    assert all(
        d["response_excerpt"] == '{"error": "scripted 500"}' for d in failures if d["status_code"] == 500
    )
    successes = deliveries(api, hook["id"], succeeded="true")
    assert all(d["status_code"] == 200 and d["latency_ms"] is not None for d in successes)
    assert all(d["response_excerpt"] == '{"ok": true}' and d["error"] is None for d in successes)
    retried = [d for d in log if d["attempt"] > 1]
    assert retried, "failed events were retried as later attempts"
    assert {r.headers["casebridge-delivery-attempt"] for r in got} >= {"1", "2"}

    wait_for(lambda: webhook_row(clean, hook["id"]).consecutive_failures == 0, what="health reset")
    assert webhook_row(clean, hook["id"]).active


def test_retry_after_is_honoured(
    api: httpx.Client, clean: Backend, worker: Worker, receiver: Receiver, make_webhook: MakeWebhook
) -> None:
    receiver.then(fail(429, **{"Retry-After": "1"}), fail(503, **{"Retry-After": "1"}))
    make_webhook(receiver.url, event_types=["contact.created"])
    contact = create_contact(api)
    wait_for(lambda: len(receiver.delivered()) == 1, what="the delivery after two Retry-Afters")
    first, second, third = receiver.all()
    assert first.event["entity_id"] == contact["id"] == third.event["entity_id"]
    assert second.at - first.at >= 1.0  # without Retry-After the next try would come after ~0.05 s
    assert third.at - second.at >= 1.0


def test_410_disables_at_once(
    api: httpx.Client, clean: Backend, worker: Worker, receiver: Receiver, make_webhook: MakeWebhook
) -> None:
    receiver.default = fail(410)
    hook = make_webhook(receiver.url)
    create_contact(api)
    wait_for(lambda: not webhook_row(clean, hook["id"]).active, what="the webhook to be disabled")
    got = api.get(f"/api/v1/webhooks/{hook['id']}").json()
    assert got["active"] is False
    assert "410 Gone" in got["disabled_reason"]
    time.sleep(0.5)
    assert len(receiver.all()) == 1  # no retries to a receiver that said Gone
    disabled = api.get("/api/v1/events", params={"type": "webhook.disabled"}).json()["data"]
    assert len(disabled) == 1
    assert disabled[0]["entity_id"] == hook["id"]
    assert hook["secret"] not in str(disabled)


def test_sustained_failure_disables_with_a_reason_and_reenabling_resumes(
    api: httpx.Client, clean: Backend, worker: Worker, receiver: Receiver, make_webhook: MakeWebhook
) -> None:
    subscriber.configure(disable_after=timedelta(seconds=0.6))
    receiver.default = fail(500)
    hook = make_webhook(receiver.url)
    path = f"/api/v1/webhooks/{hook['id']}"
    start = newest_event_id(clean)
    first = create_contact(api)
    wait_for(lambda: not webhook_row(clean, hook["id"]).active, what="auto-disable")
    got = api.get(path).json()
    assert got["active"] is False
    assert got["disabled_at"] is not None
    reason = got["disabled_reason"]
    assert re.match(r"disabled after \d+ consecutive failed deliveries since \d{4}-\d\d-\d\d ", reason), (
        reason
    )
    assert "last error: HTTP 500" in reason
    assert got["consecutive_failures"] >= 2
    assert got["failing_since"] is not None
    event = api.get("/api/v1/events", params={"type": "webhook.disabled"}).json()["data"]
    assert event[0]["changes"]["disabled_reason"]["new"] == reason
    assert event[0]["actor"]["name"] == "system"

    # while disabled: nothing is attempted; the events wait
    time.sleep(0.3)
    attempts = len(receiver.all())
    second = create_contact(api)
    time.sleep(0.5)
    assert len(receiver.all()) == attempts

    receiver.default = OK
    r = api.patch(path, json={"active": True}, headers={"If-Match": got["etag"]})
    assert r.status_code == 200, r.text
    assert r.json()["disabled_reason"] is None
    assert r.json()["consecutive_failures"] == 0
    third = create_contact(api)
    expected = events_after(clean, start, ("contact.",))
    assert set(expected) == {first["id"], second["id"], third["id"]}
    wanted = {i for ids in expected.values() for i in ids}
    wait_for(lambda: wanted <= receiver.delivered_ids(), what="the waiting and the new events")
    assert receiver.first_success_order() == expected
    (resent,) = [r for r in receiver.delivered() if r.event["entity_id"] == first["id"]]
    assert resent.headers["casebridge-delivery-attempt"] == "1"  # a fresh schedule after re-enabling


def test_a_delivery_that_exhausts_its_attempts_disables_a_failing_webhook(
    api: httpx.Client, clean: Backend, worker: Worker, receiver: Receiver, make_webhook: MakeWebhook
) -> None:
    subscriber.configure(max_attempts=3)
    receiver.default = fail(500)
    hook = make_webhook(receiver.url)
    contact = create_contact(api)
    wait_for(lambda: not webhook_row(clean, hook["id"]).active, what="disable after the last attempt")
    reason = webhook_row(clean, hook["id"]).disabled_reason or ""
    assert "failed all 3 attempts" in reason, reason
    with unit_of_work(clean.db.reader) as session:
        states = {d.state for d in session.scalars(select(EventDelivery))}
    assert states == {"failed"}
    assert [r.event["entity_id"] for r in receiver.all()] == [contact["id"]] * 3

    # the failed delivery can be queued again once the receiver is back
    receiver.default = OK
    path = f"/api/v1/webhooks/{hook['id']}"
    assert api.patch(path, json={"active": True}).status_code == 200
    r = api.post(f"{path}/redeliver", params={"since_event_id": 0})
    assert r.status_code == 202
    assert r.json() == {"queued": 1}
    wait_for(lambda: len(receiver.delivered()) == 1, what="the requeued delivery")


def test_filter_sends_only_matching_events(
    api: httpx.Client, clean: Backend, worker: Worker, receiver: Receiver, make_webhook: MakeWebhook
) -> None:
    only_smith = {"==": [{"var": "event.changes.last_name.new"}, "Smith"]}
    hook = make_webhook(receiver.url, event_types=["contact.created"], filter=only_smith)
    create_contact(api, last_name="Jones")
    smith = create_contact(api, last_name="Smith")
    create_contact(api, last_name="Brown")
    marker = create_contact(api, last_name="Smith")
    wait_for(lambda: len(receiver.delivered()) == 2, what="the matching events")
    assert {r.event["entity_id"] for r in receiver.delivered()} == {smith["id"], marker["id"]}  # any order
    with unit_of_work(clean.db.reader) as session:
        assert len(session.scalars(select(EventDelivery)).all()) == 2  # the others were never queued
    assert all(r.signed_by(hook["secret"]) for r in receiver.all())


def test_ping_and_redeliver_are_synchronous_and_logged(
    api: httpx.Client, clean: Backend, worker: Worker, receiver: Receiver, make_webhook: MakeWebhook
) -> None:
    hook = make_webhook(receiver.url, event_types=["contact.created"])
    path = f"/api/v1/webhooks/{hook['id']}"
    r = api.post(f"{path}/ping")
    assert r.status_code == 200, r.text
    ping = r.json()
    assert ping["succeeded"] is True
    assert ping["status_code"] == 200
    assert ping["event_type"] == "webhook.ping"
    assert ping["event_id"] is None
    assert ping["latency_ms"] >= 0
    assert ping["response_excerpt"] == '{"ok": true}'
    (got,) = receiver.all()
    assert got.signed_by(hook["secret"])
    assert got.event["type"] == "webhook.ping"
    assert got.event_id == 0
    assert got.event["entity_id"] == hook["id"]
    assert got.event["actor"]["role"] == "admin"

    receiver.then(fail(500))
    failed_ping = api.post(f"{path}/ping").json()
    assert failed_ping["succeeded"] is False
    assert failed_ping["status_code"] == 500
    assert failed_ping["attempt"] == 2
    assert webhook_row(clean, hook["id"]).consecutive_failures == 0  # manual sends leave health alone

    contact = create_contact(api)
    wait_for(lambda: len(receiver.all()) == 3, what="the contact event")
    event_id = receiver.all()[2].event_id
    wait_for(lambda: len(deliveries(api, hook["id"], event_id=event_id)) == 1, what="its log row")
    event_log = deliveries(api, hook["id"], event_id=event_id)
    assert len(event_log) == 1
    assert event_log[0]["succeeded"]
    redo = api.post(f"{path}/deliveries/{event_log[0]['id']}/redeliver")
    assert redo.status_code == 200, redo.text
    assert redo.json()["attempt"] == 2
    assert redo.json()["succeeded"]
    assert redo.json()["id"] > event_log[0]["id"]
    again = receiver.all()[3]
    assert again.event_id == event_log[0]["event_id"]
    assert again.event["entity_id"] == contact["id"]
    assert again.headers["casebridge-delivery-attempt"] == "2"
    assert again.signed_by(hook["secret"])

    rotated = api.post(f"{path}/rotate-secret").json()["secret"]
    assert api.post(f"{path}/ping").json()["succeeded"]
    latest = receiver.all()[-1]
    assert latest.signed_by(rotated)
    assert not latest.signed_by(hook["secret"])
    assert len(deliveries(api, hook["id"])) == 5


def test_pings_reach_a_disabled_webhook_and_a_dead_receiver_is_logged(
    api: httpx.Client, clean: Backend, receiver: Receiver, make_webhook: MakeWebhook
) -> None:
    hook = make_webhook(receiver.url)
    path = f"/api/v1/webhooks/{hook['id']}"
    api.patch(path, json={"active": False})
    assert api.post(f"{path}/ping").json()["succeeded"]

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead_hook = make_webhook(f"http://127.0.0.1:{port}/gone")
    dead = api.post(f"/api/v1/webhooks/{dead_hook['id']}/ping").json()
    assert dead["succeeded"] is False
    assert dead["status_code"] is None
    assert "Connect" in dead["error"]

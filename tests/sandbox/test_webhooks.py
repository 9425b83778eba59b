"""Webhooks over real HTTP: a receiver on loopback answers the handshake, verifies every signature and
answers deliveries as each test tells it to (failing, 410, ...)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from casebridge.sandbox.clio import SandboxConfig, SandboxState, create_app
from tests.conftest import _serve
from tests.sandbox.conftest import Sandbox, clio_client, ok

HOOK_FIELDS = "id,etag,url,fields,shared_secret,model,status,events,expires_at,created_at,updated_at,user"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None  # None: a handshake (nothing signed)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook endpoint. Learns each webhook's secret from its handshake (as a real one does) and
    checks the signature of every delivery with it. ``answers[path]`` are the statuses to answer
    deliveries on ``path`` with, in turn (then 200); handshakes on a path in ``silent`` are not echoed."""

    base: str = ""
    secrets: dict[int, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"{self.base}{path}"

    def handshakes(self, path: str = "/hook") -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path and r.verified is None]

    def deliveries(self, path: str = "/hook") -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path and r.verified is not None]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            secret = self.headers.get("X-Hook-Secret")
            reply: dict[str, str] = {}
            with rx.lock:
                if secret is not None:
                    rx.secrets[json.loads(body)["data"]["webhook_id"]] = secret
                    verified = None
                    status = 200
                    if self.path not in rx.silent:
                        reply["X-Hook-Secret"] = secret
                else:
                    known = rx.secrets.get(json.loads(body)["meta"]["webhook_id"], "")
                    expected = hmac.new(known.encode(), body, hashlib.sha256).hexdigest()
                    verified = hmac.compare_digest(expected, self.headers.get("X-Hook-Signature", ""))
                    queue = rx.answers.get(self.path) or []
                    status = queue.pop(0) if queue else 200
                rx.received.append(Received(self.path, dict(self.headers), body, verified))
            self.send_response(status)
            for name, value in reply.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    rx.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield rx
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def deliveries_log(sandbox: Sandbox) -> list[dict[str, Any]]:
    with sandbox.admin() as admin:
        rows: list[dict[str, Any]] = ok(admin.get("/state/webhook_deliveries"))
    return sorted(rows, key=lambda r: r["id"])


def subscribe(
    clio: httpx.Client, receiver: Receiver, *, path: str = "/hook", enabled: bool = True, **data: Any
) -> dict[str, Any]:
    """Create a webhook and, if ``enabled``, wait until the handshake has enabled it."""
    hook: dict[str, Any] = ok(
        clio.post(
            "/webhooks.json",
            params={"fields": HOOK_FIELDS},
            json={"data": {"url": receiver.url(path), **data}},
        ),
        201,
    )["data"]
    if enabled:
        wait_for("the handshake", lambda: status_of(clio, hook["id"]) == "enabled")
    return hook


def status_of(clio: httpx.Client, hook_id: int) -> str:
    return str(ok(clio.get(f"/webhooks/{hook_id}", params={"fields": "status"}))["data"]["status"])


def new_contact(clio: httpx.Client, first: str = "Ann", last: str = "Smith") -> dict[str, Any]:
    data: dict[str, Any] = ok(
        clio.post(
            "/contacts",
            params={"fields": "id,etag,name"},
            json={"data": {"type": "Person", "first_name": first, "last_name": last}},
        ),
        201,
    )["data"]
    return data


def test_handshake_enables_and_a_created_contact_arrives_signed(
    sandbox: Sandbox, clio: httpx.Client, receiver: Receiver
) -> None:
    hook = subscribe(
        clio,
        receiver,
        enabled=False,
        model="contact",
        fields="id,etag,name,first_name,type",
        events=["created"],
    )
    assert hook["status"] == "pending"
    assert hook["model"] == "contact"
    assert hook["events"] == ["created"]
    assert hook["user"]["id"] == int(sandbox.state.settings["sandbox_user_id"])
    assert len(hook["shared_secret"]) >= 32
    (handshake,) = wait_for("the handshake", receiver.handshakes)
    assert handshake.headers["X-Hook-Secret"] == hook["shared_secret"]
    assert handshake.json == {"data": {"webhook_id": hook["id"]}}
    wait_for("enabled", lambda: status_of(clio, hook["id"]) == "enabled")

    contact = new_contact(clio)
    (delivery,) = wait_for("the delivery", receiver.deliveries)
    assert delivery.verified is True
    assert delivery.headers["X-Hook-Signature"] == delivery.headers["X-Hook-Signature"].lower()
    expected = ok(clio.get(f"/contacts/{contact['id']}", params={"fields": "id,etag,name,first_name,type"}))
    assert delivery.json == {
        "data": expected["data"],
        "meta": {"event": "created", "webhook_id": hook["id"]},
    }
    assert delivery.json["data"]["name"] == "Ann Smith"
    (logged,) = [r for r in deliveries_log(sandbox) if r["event"] == "created"]
    wait_for("the log", lambda: deliveries_log(sandbox)[-1]["status"] == "delivered")
    assert logged["body"].encode() == delivery.body


def test_an_unechoed_handshake_leaves_it_pending_until_activated(
    sandbox: Sandbox, clio: httpx.Client, receiver: Receiver
) -> None:
    receiver.silent.add("/quiet")
    hook = subscribe(clio, receiver, path="/quiet", enabled=False, model=6, fields="id,etag")
    assert hook["model"] == "contact"  # given by id, named in responses
    assert hook["events"] == ["created", "updated", "deleted"]  # every event of the model by default
    wait_for("the handshake", lambda: receiver.handshakes("/quiet"))
    wait_for("the handshake to fail", lambda: deliveries_log(sandbox)[0]["status"] == "failed")
    assert status_of(clio, hook["id"]) == "pending"
    new_contact(clio)
    assert [r["event"] for r in deliveries_log(sandbox)] == ["handshake"]  # a pending webhook sends nothing

    wrong = clio.put(f"/webhooks/{hook['id']}/activate", headers={"X-Hook-Secret": "not-the-secret"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["type"] == "ForbiddenError"
    assert clio.put(f"/webhooks/{hook['id']}/activate").status_code == 403
    activated = ok(
        clio.put(
            f"/webhooks/{hook['id']}/activate.json",
            params={"fields": "id,status"},
            headers={"X-Hook-Secret": hook["shared_secret"]},
        )
    )
    assert activated["data"] == {"id": hook["id"], "status": "enabled"}
    contact = new_contact(clio, "Bo", "Jones")
    (delivery,) = wait_for("the delivery", lambda: receiver.deliveries("/quiet"))
    assert delivery.json["data"] == {"id": contact["id"], "etag": contact["etag"]}
    assert delivery.verified is True  # the secret the handshake carried signs the deliveries


def test_https_is_required_unless_the_sandbox_allows_http() -> None:
    state = SandboxState(SandboxConfig(rate_limit=100_000, webhook_time_scale=0.001))
    server, thread, url = _serve(create_app(state), date_header=False)
    try:
        sandbox = Sandbox(url, state, None)
        with clio_client(sandbox) as clio:
            plain = clio.post(
                "/webhooks",
                json={"data": {"url": "http://127.0.0.1:9/hook", "model": "contact", "fields": "id"}},
            )
            assert plain.status_code == 422
            assert plain.json()["error"]["message"].startswith("url must use the https scheme")
            assert state.all("webhooks") == []
            # An https URL is accepted; nothing answers there, so the webhook stays pending.
            hook = ok(
                clio.post(
                    "/webhooks",
                    params={"fields": "id,status,url"},
                    json={"data": {"url": "https://127.0.0.1:9/hook", "model": "contact", "fields": "id"}},
                ),
                201,
            )["data"]
            assert hook["status"] == "pending"
            wait_for(
                "the handshake to fail", lambda: state.all("webhook_deliveries")[0]["status"] == "failed"
            )
            assert status_of(clio, hook["id"]) == "pending"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_updates_are_delivered_only_when_a_watched_field_changes(
    sandbox: Sandbox, clio: httpx.Client, receiver: Receiver
) -> None:
    contact = new_contact(clio)  # exists before the webhook
    hook = subscribe(clio, receiver, model="contact", fields="id,etag,first_name", events=["updated"])

    def patch(**data: Any) -> None:
        ok(clio.patch(f"/contacts/{contact['id']}", json={"data": data}))

    def updates() -> list[dict[str, Any]]:
        return [r for r in deliveries_log(sandbox) if r["event"] == "updated"]

    patch(last_name="Smyth")  # unwatched, but the first event about this record: delivered
    assert len(updates()) == 1
    patch(last_name="Smithe")  # unwatched: not delivered
    patch(title="Dr")
    assert len(updates()) == 1
    patch(first_name="Anne")  # watched: delivered
    assert len(updates()) == 2
    patch(first_name="Anne", last_name="Smith")  # the watched value is what was last sent
    assert len(updates()) == 2

    received = wait_for("two updates", lambda: len(receiver.deliveries()) == 2 and receiver.deliveries())
    first, second = (r.json for r in received)
    assert first["meta"] == {"event": "updated", "webhook_id": hook["id"]}
    assert first["data"]["first_name"] == "Ann"
    assert second["data"]["first_name"] == "Anne"
    current = ok(clio.get(f"/contacts/{contact['id']}", params={"fields": "etag"}))["data"]["etag"]
    assert second["data"]["etag"] != current  # the etag of the change delivered, not of later ones
    assert all(r.verified for r in received)


def test_matter_status_events(sandbox: Sandbox, clio: httpx.Client, receiver: Receiver) -> None:
    client = new_contact(clio)
    hook = subscribe(
        clio, receiver, model=1, fields="id,status,client{id}", events=["matter_closed", "matter_opened"]
    )
    assert hook["model"] == "matter"
    matter = ok(
        clio.post(
            "/matters", json={"data": {"description": "Smith v Jones", "client": {"id": client["id"]}}}
        ),
        201,
    )["data"]
    ok(clio.patch(f"/matters/{matter['id']}", json={"data": {"description": "Smith v Jones (appeal)"}}))
    ok(clio.patch(f"/matters/{matter['id']}", json={"data": {"status": "closed"}}))
    ok(clio.patch(f"/matters/{matter['id']}", json={"data": {"location": "Leeds"}}))
    ok(clio.patch(f"/matters/{matter['id']}", json={"data": {"status": "open"}}))
    assert [r["event"] for r in deliveries_log(sandbox)] == ["handshake", "matter_closed", "matter_opened"]
    closed, opened = wait_for(
        "two deliveries", lambda: len(receiver.deliveries()) == 2 and receiver.deliveries()
    )
    assert closed.json == {
        "data": {"id": matter["id"], "status": "Closed", "client": {"id": client["id"]}},
        "meta": {"event": "matter_closed", "webhook_id": hook["id"]},
    }
    assert opened.json["meta"]["event"] == "matter_opened"
    assert opened.json["data"]["status"] == "Open"


def test_deleted_sends_the_id_and_etag(sandbox: Sandbox, clio: httpx.Client, receiver: Receiver) -> None:
    contact = new_contact(clio)
    hook = subscribe(clio, receiver, model="contact", fields="id,etag,name,type", events=["deleted"])
    ok(clio.patch(f"/contacts/{contact['id']}", json={"data": {"title": "Ms"}}))  # not subscribed
    last = ok(clio.get(f"/contacts/{contact['id']}"))["data"]
    assert clio.delete(f"/contacts/{contact['id']}").status_code == 204
    (delivery,) = wait_for("the delivery", receiver.deliveries)
    assert delivery.json == {
        "data": {"id": contact["id"], "etag": last["etag"]},
        "meta": {"event": "deleted", "webhook_id": hook["id"]},
    }
    assert delivery.verified is True


def test_a_failing_receiver_gets_the_event_on_a_retry_and_gives_up_after_five(
    sandbox: Sandbox, clio: httpx.Client, receiver: Receiver
) -> None:
    receiver.answers["/flaky"] = [500, 503]
    receiver.answers["/down"] = [500] * 5
    subscribe(clio, receiver, path="/flaky", model="contact", fields="id,name", events=["created"])
    subscribe(clio, receiver, path="/down", model="contact", fields="id", events=["created"])
    contact = new_contact(clio)

    attempts = wait_for(
        "three attempts", lambda: len(receiver.deliveries("/flaky")) == 3 and receiver.deliveries("/flaky")
    )
    assert {a.body for a in attempts} == {attempts[0].body}  # the same delivery, retried
    assert attempts[-1].json["data"] == {"id": contact["id"], "name": "Ann Smith"}
    assert all(a.verified for a in attempts)

    def logged(path: str) -> dict[str, Any]:
        return next(r for r in deliveries_log(sandbox) if r["event"] == "created" and r["url"].endswith(path))

    flaky = wait_for("delivered", lambda: logged("/flaky")["status"] == "delivered" and logged("/flaky"))
    assert flaky["attempts"] == 3
    assert [r["status"] for r in flaky["responses"]] == [500, 503, 200]
    down = wait_for("given up", lambda: logged("/down")["status"] == "given_up" and logged("/down"))
    assert down["attempts"] == 5
    assert len(receiver.deliveries("/down")) == 5


def test_a_410_suspends_the_webhook(sandbox: Sandbox, clio: httpx.Client, receiver: Receiver) -> None:
    receiver.answers["/gone"] = [410]
    hook = subscribe(clio, receiver, path="/gone", model="contact", fields="id", events=["created"])
    new_contact(clio)
    wait_for("suspended", lambda: status_of(clio, hook["id"]) == "suspended")
    (logged,) = [r for r in deliveries_log(sandbox) if r["event"] == "created"]
    assert logged["status"] == "delivered"  # 410 counts as success: not retried
    new_contact(clio, "Cy", "Young")
    assert [r["event"] for r in deliveries_log(sandbox)] == ["handshake", "created"]
    assert len(receiver.deliveries("/gone")) == 1


def test_expiry_stops_deliveries_and_extension_is_capped(
    sandbox: Sandbox, clio: httpx.Client, receiver: Receiver
) -> None:
    hook = subscribe(clio, receiver, model="contact", fields="id", events=["created"])
    with sandbox.admin() as admin:
        now = datetime.fromisoformat(ok(admin.get("/clock"))["now"])
        expires = datetime.fromisoformat(hook["expires_at"])
        assert timedelta(days=3) - timedelta(minutes=1) < expires - now <= timedelta(days=3)
        ok(admin.post("/clock", json={"advance_seconds": 3 * 86400 + 60}))
        now = datetime.fromisoformat(ok(admin.get("/clock"))["now"])
    new_contact(clio)
    assert [r["event"] for r in deliveries_log(sandbox)] == ["handshake"]

    too_far = clio.patch(
        f"/webhooks/{hook['id']}", json={"data": {"expires_at": (now + timedelta(days=32)).isoformat()}}
    )
    assert too_far.status_code == 422
    assert "31 days" in too_far.json()["error"]["message"]
    past = clio.patch(
        f"/webhooks/{hook['id']}", json={"data": {"expires_at": (now - timedelta(hours=1)).isoformat()}}
    )
    assert past.status_code == 422
    renewed = ok(
        clio.patch(
            f"/webhooks/{hook['id']}",
            params={"fields": "expires_at,status"},
            json={"data": {"expires_at": (now + timedelta(days=31)).isoformat()}},
        )
    )["data"]
    assert datetime.fromisoformat(renewed["expires_at"]) > now + timedelta(days=30)
    assert renewed["status"] == "enabled"
    contact = new_contact(clio, "Di", "Evans")
    (delivery,) = wait_for("the delivery", receiver.deliveries)
    assert delivery.json["data"] == {"id": contact["id"]}


def test_validation_listing_url_change_and_delete(
    sandbox: Sandbox, clio: httpx.Client, receiver: Receiver
) -> None:
    def refused(data: dict[str, Any]) -> str:
        response = clio.post("/webhooks", json={"data": {"url": receiver.url(), **data}})
        assert response.status_code == 422, response.text
        return str(response.json()["error"]["message"])

    assert refused({"model": "contact"}) == "fields can't be blank"
    assert refused({"fields": "id"}) == "model can't be blank"
    assert "model must be one of" in refused({"model": "invoice", "fields": "id"})
    assert "model id from 1 to 10" in refused({"model": 11, "fields": "id"})
    assert refused({"model": "contact", "fields": "id,colour"}) == "fields: Invalid field: colour"
    assert "nesting" in refused({"model": "matter", "fields": "client{company{name}}"})
    assert "at most 1000 characters" in refused({"model": "contact", "fields": "id," * 500})
    assert "not available for contact" in refused(
        {"model": "contact", "fields": "id", "events": ["matter_closed"]}
    )
    assert "not available for clio_payments_payment" in refused(
        {"model": "clio_payments_payment", "fields": "id", "events": ["deleted"]}
    )
    assert "31 days" in refused(
        {
            "model": "contact",
            "fields": "id",
            "expires_at": (datetime.now().astimezone() + timedelta(days=40)).isoformat(),
        }
    )
    for url, message in (
        ("https://[::1/hook", "url is not a valid URL"),
        ("https://127.0.0.1:http/hook", "url is not a valid URL"),
        ("https:///hook", "url must be an absolute URL with a host"),
        ("ftp://example.com/hook", "url must use the https or http scheme"),
    ):
        assert refused({"url": url, "model": "contact", "fields": "id"}).startswith(message)
    assert clio.post("/webhooks", params={"fields": "nope"}, json={"data": {}}).status_code == 400
    assert [r["event"] for r in deliveries_log(sandbox)] == []  # nothing was created

    hook = subscribe(
        clio, receiver, model="matter", fields="id,client{id,name},status", events=["matter_pended"]
    )
    listed = ok(clio.get("/webhooks", params={"fields": "id,model,status,fields"}))["data"]
    assert listed == [
        {"id": hook["id"], "model": "matter", "status": "enabled", "fields": "id,client{id,name},status"}
    ]
    # A new URL: a new handshake there, pending until it succeeds.
    moved = ok(
        clio.patch(
            f"/webhooks/{hook['id']}",
            params={"fields": "url,status"},
            json={"data": {"url": receiver.url("/moved")}},
        )
    )["data"]
    assert moved == {"url": receiver.url("/moved"), "status": "pending"}
    (handshake,) = wait_for("the new handshake", lambda: receiver.handshakes("/moved"))
    assert handshake.headers["X-Hook-Secret"] == hook["shared_secret"]
    wait_for("enabled again", lambda: status_of(clio, hook["id"]) == "enabled")

    assert clio.delete(f"/webhooks/{hook['id']}").status_code == 204
    gone = clio.get(f"/webhooks/{hook['id']}")
    assert gone.status_code == 404
    assert ok(clio.get("/webhooks"))["data"] == []


def test_webhook_faults_drop_duplicate_and_reorder(
    sandbox: Sandbox, clio: httpx.Client, receiver: Receiver
) -> None:
    subscribe(clio, receiver, model="contact", fields="id,name", events=["created"])

    def set_faults(**settings: float) -> None:
        with sandbox.admin() as admin:
            ok(admin.put("/faults", json=settings))

    set_faults(webhook_drop_rate=1.0)
    new_contact(clio, "Dee", "Dropped")
    dropped = wait_for("the drop", lambda: deliveries_log(sandbox)[-1]["status"] == "dropped")
    assert dropped

    set_faults(webhook_duplicate_rate=1.0)
    twice = new_contact(clio, "Dub", "Twice")
    copies = wait_for("two copies", lambda: len(receiver.deliveries()) == 2 and receiver.deliveries())
    assert copies[0].body == copies[1].body
    assert copies[0].json["data"] == {"id": twice["id"], "name": "Dub Twice"}
    assert all(c.verified for c in copies)

    set_faults(webhook_reorder_rate=1.0)
    first = new_contact(clio, "Ada", "First")
    second = new_contact(clio, "Bob", "Second")
    rest = wait_for("two more", lambda: len(receiver.deliveries()) == 4 and receiver.deliveries()[2:])
    assert [r.json["data"]["id"] for r in rest] == [second["id"], first["id"]]  # the second overtook
    set_faults(webhook_delay_seconds=100.0)  # 0.1 s at the tests' time scale
    late = new_contact(clio, "Cal", "Late")
    (delayed,) = wait_for("the delayed one", lambda: receiver.deliveries()[4:])
    assert delayed.json["data"]["id"] == late["id"]
    wanted = ["dropped", *["delivered"] * 4]
    wait_for("the log", lambda: [r["status"] for r in deliveries_log(sandbox)[1:]] == wanted)

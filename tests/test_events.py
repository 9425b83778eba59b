"""The outbox: event rows exactly match committed changes, and a failing request writes none.

Also: actor and request id on every event, ``after`` paging, ``type`` filters, per-record history, a
hypothesis state machine over random valid and invalid contact operations, and a commit-order check
(a reader paging ``after=<last seen>`` while writers commit never skips an id that later appears).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from casebridge.db.session import unit_of_work
from casebridge.kit.context import Role
from casebridge.models import ApiToken
from tests.conftest import Backend, MakeClient

CONTACTS = "/api/v1/contacts"
EVENTS = "/api/v1/events"
_rid = itertools.count(1)


@dataclass
class Actor:
    client: httpx.Client
    token_id: str
    name: str
    role: Role

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, str]:
        """Send with a fresh X-Request-Id; return the response and the id it echoed."""
        rid = f"req-{next(_rid)}-{uuid.uuid4().hex[:8]}"
        headers = {"X-Request-Id": rid, **kwargs.pop("headers", {})}
        r = self.client.request(method, path, headers=headers, **kwargs)
        assert r.headers["x-request-id"] == rid, "the request id must be echoed"
        return r, rid


def make_actor(make_client: MakeClient, backend: Backend, role: Role, name: str) -> Actor:
    client = make_client(role, name=name)
    with unit_of_work(backend.db.reader) as session:
        token_id = session.scalars(select(ApiToken.id).where(ApiToken.name == name)).one()
    return Actor(client, str(token_id), name, role)


def all_events(client: httpx.Client, after: int = 0, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        r = client.get(EVENTS, params={"after": after, "limit": 200, **params})
        assert r.status_code == 200, r.text
        body = r.json()
        out.extend(body["data"])
        if body["next_after"] is None:
            return out
        after = body["next_after"]


def last_event_id(client: httpx.Client) -> int:
    events = all_events(client)
    return events[-1]["id"] if events else 0


@dataclass(frozen=True)
class Expected:
    type: str
    entity_id: str
    actor: Actor
    request_id: str
    changed: frozenset[str] = field(default_factory=frozenset)  # fields that must appear in changes


def assert_log(events: list[dict[str, Any]], expected: list[Expected]) -> None:
    got = [(e["type"], e["entity_id"]) for e in events]
    want = [(x.type, x.entity_id) for x in expected]
    assert got == want
    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)), "event ids must be strictly increasing"
    for event, x in zip(events, expected, strict=True):
        assert event["actor"] == {"id": x.actor.token_id, "name": x.actor.name, "role": x.actor.role.value}
        assert event["request_id"] == x.request_id
        assert event["changes"], event
        for name, change in event["changes"].items():
            assert set(change) == {"old", "new"}, (name, change)
            assert change["old"] != change["new"], (name, change)
        assert x.changed <= set(event["changes"]), (x.changed, event["changes"])


# --- one mixed sequence, checked exactly ---------------------------------------------------------------


def test_event_rows_exactly_match_committed_changes(make_client: MakeClient, clean: Backend) -> None:
    staff = make_actor(make_client, clean, Role.STAFF, "ev-staff")
    admin = make_actor(make_client, clean, Role.ADMIN, "ev-admin")
    integ = make_actor(make_client, clean, Role.INTEGRATION, "ev-pms")
    reader = make_actor(make_client, clean, Role.READ_ONLY, "ev-reader")
    expected: list[Expected] = []

    def ok(actor: Actor, method: str, path: str, status: int = 200, **kw: Any) -> tuple[dict[str, Any], str]:
        r, rid = actor.request(method, path, **kw)
        assert r.status_code == status, r.text
        return r.json(), rid

    def fails(actor: Actor, method: str, path: str, status: int, slug: str, **kw: Any) -> None:
        r, _ = actor.request(method, path, **kw)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"] == f"/problems/{slug}"

    a, rid = ok(staff, "POST", CONTACTS, 201, json={"kind": "person", "first_name": "Ann", "last_name": "A"})
    expected.append(Expected("contact.created", a["id"], staff, rid, frozenset({"first_name", "last_name"})))
    a_path = f"{CONTACTS}/{a['id']}"

    _, rid = ok(staff, "PATCH", a_path, json={"notes": "first note"})
    expected.append(Expected("contact.updated", a["id"], staff, rid, frozenset({"notes"})))
    ok(staff, "PATCH", a_path, json={"notes": "first note"})  # no change: no event
    ok(staff, "PATCH", a_path, json={})  # nothing sent: no event
    ok(staff, "PATCH", a_path, json={"last_name": "  A  "})  # stripped to the same value: no event

    fails(staff, "POST", CONTACTS, 422, "validation", json={"kind": "person", "emails": [{"address": "x"}]})
    fails(staff, "POST", CONTACTS, 422, "validation", json={"kind": "company"})  # service-level rule
    fails(staff, "PATCH", f"{CONTACTS}/{uuid.uuid4()}", 404, "not-found", json={"notes": "x"})
    fails(
        staff, "PATCH", a_path, 412, "precondition-failed", json={"notes": "x"}, headers={"If-Match": '"x"'}
    )
    fails(reader, "POST", CONTACTS, 403, "forbidden", json={"kind": "person", "last_name": "R"})

    b, rid = ok(
        integ,
        "POST",
        CONTACTS,
        201,
        json={"kind": "company", "company_name": "Acme", "mastered_by": "pms", "external_ref": "C-1"},
    )
    expected.append(
        Expected("contact.created", b["id"], integ, rid, frozenset({"company_name", "mastered_by"}))
    )
    b_path = f"{CONTACTS}/{b['id']}"
    fails(staff, "PATCH", b_path, 403, "mastered-elsewhere", json={"notes": "x"})
    fails(admin, "DELETE", b_path, 403, "mastered-elsewhere")
    fails(
        staff,
        "POST",
        CONTACTS,
        403,
        "mastered-elsewhere",
        json={"kind": "person", "last_name": "M", "mastered_by": "pms"},
    )

    _, rid = ok(admin, "DELETE", a_path)
    expected.append(Expected("contact.archived", a["id"], admin, rid, frozenset({"archived_at"})))
    ok(admin, "DELETE", a_path)  # already archived: no event
    fails(staff, "PATCH", a_path, 409, "archived", json={"notes": "while archived"})
    _, rid = ok(admin, "POST", f"{a_path}/restore")
    expected.append(Expected("contact.restored", a["id"], admin, rid, frozenset({"archived_at"})))
    ok(admin, "POST", f"{a_path}/restore")  # not archived: no event

    user, rid = ok(
        admin, "POST", "/api/v1/users", 201, json={"name": "Fee Earner", "email": "fe@firm.example"}
    )
    expected.append(Expected("user.created", user["id"], admin, rid, frozenset({"name", "email"})))
    fails(admin, "POST", "/api/v1/users", 422, "validation", json={"name": "Dup", "email": "fe@firm.example"})

    _, rid = ok(integ, "PATCH", b_path, json={"notes": "from the PMS", "company_name": "Acme Ltd"})
    expected.append(Expected("contact.updated", b["id"], integ, rid, frozenset({"notes", "company_name"})))

    # An idempotent replay changes nothing.
    key_body = {"kind": "person", "last_name": "Keyed"}
    c, rid = ok(staff, "POST", CONTACTS, 201, json=key_body, headers={"Idempotency-Key": "ev-key"})
    expected.append(Expected("contact.created", c["id"], staff, rid))
    ok(staff, "POST", CONTACTS, 201, json=key_body, headers={"Idempotency-Key": "ev-key"})

    # A request without X-Request-Id gets a generated one, and that is what the event records.
    r = staff.client.patch(f"{CONTACTS}/{c['id']}", json={"notes": "no request id sent"})
    assert r.status_code == 200
    expected.append(Expected("contact.updated", c["id"], staff, r.headers["x-request-id"]))
    # A garbage X-Request-Id is replaced, and the replacement is what the event records.
    r = staff.client.patch(
        f"{CONTACTS}/{c['id']}", json={"notes": "bad id"}, headers={"X-Request-Id": "no spaces allowed"}
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"] != "no spaces allowed"
    expected.append(Expected("contact.updated", c["id"], staff, r.headers["x-request-id"]))

    events = all_events(reader.client)
    assert_log(events, expected)

    created = events[0]["changes"]
    assert created["first_name"] == {"old": None, "new": "Ann"}
    assert events[1]["changes"] == {"notes": {"old": None, "new": "first note"}}
    pms_update = next(e for e in events if e["type"] == "contact.updated" and e["entity_id"] == b["id"])
    assert pms_update["changes"]["company_name"] == {"old": "Acme", "new": "Acme Ltd"}
    assert pms_update["changes"]["display_name"] == {"old": "Acme", "new": "Acme Ltd"}

    # `after` paging: pages of 2 concatenate to the whole log, and next_after is null at the end.
    paged: list[dict[str, Any]] = []
    after = 0
    while True:
        page = reader.client.get(EVENTS, params={"after": after, "limit": 2}).json()
        assert len(page["data"]) <= 2
        paged.extend(page["data"])
        if page["next_after"] is None:
            break
        assert page["next_after"] == page["data"][-1]["id"]
        after = page["next_after"]
    assert paged == events
    third = events[2]["id"]
    assert reader.client.get(EVENTS, params={"after": third}).json()["data"] == events[3:]
    assert reader.client.get(EVENTS, params={"after": events[-1]["id"]}).json() == {
        "data": [],
        "next_after": None,
    }

    # `type` filters: exact, repeated, and prefix.
    def types(*type_params: str, **params: Any) -> list[tuple[str, str]]:
        r = reader.client.get(EVENTS, params={"type": list(type_params), **params})
        assert r.status_code == 200, r.text
        return [(e["type"], e["entity_id"]) for e in r.json()["data"]]

    def pick(pred: Any) -> list[tuple[str, str]]:
        return [(e["type"], e["entity_id"]) for e in events if pred(e)]

    assert types("contact.updated") == pick(lambda e: e["type"] == "contact.updated")
    assert types("contact.*") == pick(lambda e: e["type"].startswith("contact."))
    assert types("user.*") == [("user.created", user["id"])]
    assert types("user.created", "contact.archived") == pick(
        lambda e: e["type"] in ("user.created", "contact.archived")
    )
    assert types("contact") == []
    assert types("contact.") == []
    assert types("_ontact.*") == []  # LIKE wildcards in the prefix are literal
    assert types("%.*") == []
    assert types("contact.*", entity_id=b["id"]) == pick(lambda e: e["entity_id"] == b["id"])
    assert types("contact.*", entity_type="user") == []

    # Per-record history, with its own paging.
    history = reader.client.get(f"{a_path}/history").json()
    assert [e["type"] for e in history["data"]] == [
        "contact.created",
        "contact.updated",
        "contact.archived",
        "contact.restored",
    ]
    assert history["data"] == [e for e in events if e["entity_id"] == a["id"]]
    first = reader.client.get(f"{a_path}/history", params={"limit": 1}).json()
    assert [e["type"] for e in first["data"]] == ["contact.created"]
    rest = reader.client.get(f"{a_path}/history", params={"after": first["next_after"]}).json()
    assert [e["type"] for e in rest["data"]] == ["contact.updated", "contact.archived", "contact.restored"]
    user_history = reader.client.get(f"/api/v1/users/{user['id']}/history").json()["data"]
    assert [e["type"] for e in user_history] == ["user.created"]
    assert reader.client.get(f"{CONTACTS}/{uuid.uuid4()}/history").status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [({"after": -1}, "query.after"), ({"limit": 0}, "query.limit"), ({"limit": 201}, "query.limit")],
)
def test_events_query_validation(api: httpx.Client, params: dict[str, Any], field: str) -> None:
    r = api.get(EVENTS, params=params)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == [field]


# --- a state machine over random valid and invalid operations ------------------------------------------


@dataclass
class ContactModel:
    id: str
    etag: str
    notes: str | None = None
    archived: bool = False
    mastered: bool = False


NOTES = st.sampled_from([None, "a", "b", "a longer note"])
WRITER_ROLES = st.sampled_from([Role.STAFF, Role.ADMIN, Role.INTEGRATION])


class EventLogMachine(RuleBasedStateMachine):
    """Apply random contact operations; after each step the event log equals the model's list."""

    actors: dict[Role, Actor]

    def __init__(self) -> None:
        super().__init__()
        self.reader = self.actors[Role.READ_ONLY]
        self.start = last_event_id(self.reader.client)
        self.expected: list[Expected] = []
        self.contacts: dict[str, ContactModel] = {}

    contacts_bundle = Bundle("contacts")

    def _send(self, role: Role, method: str, path: str, **kw: Any) -> tuple[httpx.Response, str]:
        r, rid = self.actors[role].request(method, path, **kw)
        assert r.status_code < 500, r.text
        return r, rid

    @rule(target=contacts_bundle, role=WRITER_ROLES, notes=NOTES, mastered=st.booleans())
    def create(self, role: Role, notes: str | None, mastered: bool) -> str:
        mastered = mastered and role is Role.INTEGRATION
        body: dict[str, Any] = {"kind": "person", "last_name": "Model", "notes": notes}
        if mastered:
            body["mastered_by"] = "pms"
        r, rid = self._send(role, "POST", CONTACTS, json=body)
        assert r.status_code == 201, r.text
        c = ContactModel(r.json()["id"], r.headers["etag"], notes, mastered=mastered)
        self.contacts[c.id] = c
        self.expected.append(Expected("contact.created", c.id, self.actors[role], rid))
        return c.id

    @rule(
        role=st.sampled_from(list(Role)), bad=st.sampled_from(["kind", "names", "email", "extra", "mastered"])
    )
    def create_invalid(self, role: Role, bad: str) -> None:
        bodies: dict[str, dict[str, Any]] = {
            "kind": {"kind": "robot", "last_name": "X"},
            "names": {"kind": "person"},
            "email": {"kind": "person", "last_name": "X", "emails": [{"address": "nope"}]},
            "extra": {"kind": "person", "last_name": "X", "surprise": True},
            "mastered": {"kind": "person", "last_name": "X", "mastered_by": "pms"},
        }
        body = bodies[bad]
        r, _ = self._send(role, "POST", CONTACTS, json=body)
        if role is Role.READ_ONLY:
            assert r.status_code == 403
        elif bad == "mastered":
            assert r.status_code == (201 if role is Role.INTEGRATION else 403), r.text
            if r.status_code == 201:  # a valid create after all: model it
                c = ContactModel(r.json()["id"], r.headers["etag"], mastered=True)
                self.contacts[c.id] = c
                self.expected.append(
                    Expected("contact.created", c.id, self.actors[role], r.headers["x-request-id"])
                )
        else:
            assert r.status_code == 422, r.text

    @rule(contact_id=contacts_bundle, role=WRITER_ROLES, notes=NOTES, use_etag=st.booleans())
    def update(self, contact_id: str, role: Role, notes: str | None, use_etag: bool) -> None:
        c = self.contacts[contact_id]
        headers = {"If-Match": c.etag} if use_etag else {}
        r, rid = self._send(role, "PATCH", f"{CONTACTS}/{c.id}", json={"notes": notes}, headers=headers)
        if c.mastered and role is not Role.INTEGRATION:
            assert r.status_code == 403
        elif c.archived:
            assert r.status_code == 409
        else:
            assert r.status_code == 200, r.text
            if notes != c.notes:
                self.expected.append(
                    Expected("contact.updated", c.id, self.actors[role], rid, frozenset({"notes"}))
                )
                assert r.headers["etag"] != c.etag
            else:
                assert r.headers["etag"] == c.etag
            c.notes, c.etag = notes, r.headers["etag"]

    @rule(contact_id=contacts_bundle, role=WRITER_ROLES)
    def update_with_stale_etag(self, contact_id: str, role: Role) -> None:
        r, _ = self._send(
            role,
            "PATCH",
            f"{CONTACTS}/{contact_id}",
            json={"notes": "stale"},
            headers={"If-Match": '"stale"'},
        )
        assert r.status_code == 412

    @rule(role=st.sampled_from(list(Role)))
    def update_missing(self, role: Role) -> None:
        r, _ = self._send(role, "PATCH", f"{CONTACTS}/{uuid.uuid4()}", json={"notes": "x"})
        assert r.status_code == (403 if role is Role.READ_ONLY else 404)

    @rule(contact_id=contacts_bundle, role=st.sampled_from(list(Role)), restore=st.booleans())
    def archive_or_restore(self, contact_id: str, role: Role, restore: bool) -> None:
        c = self.contacts[contact_id]
        if restore:
            r, rid = self._send(role, "POST", f"{CONTACTS}/{c.id}/restore")
        else:
            r, rid = self._send(role, "DELETE", f"{CONTACTS}/{c.id}")
        if role is Role.READ_ONLY or (c.mastered and role is not Role.INTEGRATION):
            assert r.status_code == 403
            return
        assert r.status_code == 200, r.text
        if c.archived == restore:  # a real change
            kind = "contact.restored" if restore else "contact.archived"
            self.expected.append(Expected(kind, c.id, self.actors[role], rid, frozenset({"archived_at"})))
            c.archived = not restore
        c.etag = r.headers["etag"]

    @rule(contact_id=consumes(contacts_bundle))
    def forget(self, contact_id: str) -> None:
        """Stop operating on a contact (keeps the bundle small, so later steps mix old and new)."""

    @invariant()
    def event_log_matches_model(self) -> None:
        assert_log(all_events(self.reader.client, after=self.start), self.expected)


def test_event_log_state_machine(make_client: MakeClient, clean: Backend) -> None:
    actors = {role: make_actor(make_client, clean, role, f"sm-{role.value}") for role in Role}

    class Machine(EventLogMachine):
        pass

    Machine.actors = actors
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=8,
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            database=None,
        ),
    )


# --- commit order under concurrent writers ---------------------------------------------------------------


def test_reader_paging_after_last_seen_never_skips_an_event(make_client: MakeClient, clean: Backend) -> None:
    """Writers commit concurrently while a reader pages ``after=<last seen id>``.

    If an event id could become visible before a lower id commits, the reader would move past the lower
    id and never see it. What the reader saw, in order, must be exactly the final log.
    """
    writers_n, per_writer = 6, 15
    writers = [make_client(Role.STAFF, name=f"w{i}") for i in range(writers_n)]
    reader = make_client(Role.READ_ONLY)
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def write(client: httpx.Client, i: int) -> None:
        try:
            for n in range(per_writer):
                r = client.post(CONTACTS, json={"kind": "person", "last_name": f"W{i}-{n}"})
                assert r.status_code == 201, r.text
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            after = 0
            while True:
                finished = done.is_set()  # read once more after the writers are done
                r = reader.get(EVENTS, params={"after": after, "limit": 7})
                assert r.status_code == 200, r.text
                page = r.json()["data"]
                seen.extend(e["id"] for e in page)
                if page:
                    after = page[-1]["id"]
                elif finished:
                    return
        except BaseException as exc:
            errors.append(exc)

    reader_thread = threading.Thread(target=read)
    writer_threads = [threading.Thread(target=write, args=(c, i)) for i, c in enumerate(writers)]
    reader_thread.start()
    for t in writer_threads:
        t.start()
    for t in writer_threads:
        t.join(timeout=120)
    done.set()
    reader_thread.join(timeout=120)
    assert not errors, errors

    final = [e["id"] for e in all_events(reader)]
    assert len(final) == writers_n * per_writer
    assert final == sorted(set(final))
    assert seen == final, f"the reader skipped {sorted(set(final) - set(seen))}"

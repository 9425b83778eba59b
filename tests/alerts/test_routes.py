"""Matter notes (people and workflows) and alerts (raised by workflows, acknowledged by people)."""

from __future__ import annotations

import uuid

import httpx

from casebridge.alerts import service
from casebridge.db.session import unit_of_work
from casebridge.kit.context import Role
from tests.conftest import Backend, MakeClient
from tests.factories import create_matter


def test_notes_are_written_by_writers_and_read_by_everyone(
    api: httpx.Client, make_client: MakeClient
) -> None:
    m = create_matter(api)
    staff = make_client(Role.STAFF, name="Jo Bloggs")
    r = staff.post(f"/api/v1/matters/{m['id']}/notes", json={"body": "  Called the client.  "})
    assert r.status_code == 201, r.text
    note = r.json()
    assert (note["body"], note["author"], note["matter_id"]) == ("Called the client.", "Jo Bloggs", m["id"])
    assert r.headers["location"].endswith(f"/api/v1/matters/{m['id']}/notes")
    api.post(f"/api/v1/matters/{m['id']}/notes", json={"body": "Second"})

    reader = make_client(Role.READ_ONLY)
    listed = reader.get(f"/api/v1/matters/{m['id']}/notes").json()["data"]
    assert [n["body"] for n in listed] == ["Called the client.", "Second"]
    newest = reader.get(
        f"/api/v1/matters/{m['id']}/notes", params={"order": "-created_at", "limit": 1}
    ).json()
    assert [n["body"] for n in newest["data"]] == ["Second"]
    assert newest["next_cursor"]
    assert reader.post(f"/api/v1/matters/{m['id']}/notes", json={"body": "x"}).status_code == 403

    events = api.get("/api/v1/events", params={"type": "matter.note_added"}).json()["data"]
    assert events[0]["entity_id"] == m["id"]
    assert events[0]["changes"]["note"]["new"]["body"] == "Called the client."
    assert events[0]["actor"]["name"] == "Jo Bloggs"


def test_notes_need_a_live_matter_and_a_body(api: httpx.Client) -> None:
    unknown = uuid.uuid4()
    assert api.get(f"/api/v1/matters/{unknown}/notes").status_code == 404
    assert api.post(f"/api/v1/matters/{unknown}/notes", json={"body": "x"}).status_code == 404
    m = create_matter(api)
    r = api.post(f"/api/v1/matters/{m['id']}/notes", json={"body": "   "})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "body.body"
    assert api.delete(f"/api/v1/matters/{m['id']}").status_code == 200
    r = api.post(f"/api/v1/matters/{m['id']}/notes", json={"body": "x"})
    assert r.status_code == 409
    assert r.json()["type"] == "/problems/archived"


def _raise(
    backend: Backend,
    matter_id: str | None,
    severity: str = "warning",
    message: str = "Fees passed the estimate",
) -> str:
    with unit_of_work(backend.db.writer) as session:
        alert = service.raise_alert(
            session,
            matter_id=uuid.UUID(matter_id) if matter_id else None,
            entity_type="matter" if matter_id else "contact",
            entity_id=matter_id or str(uuid.uuid4()),
            severity=severity,
            message=message,
            source="workflow:fee watch",
        )
        return str(alert.id)


def test_alerts_are_listed_per_matter_and_acknowledged(
    api: httpx.Client, clean: Backend, make_client: MakeClient
) -> None:
    m, other = create_matter(api), create_matter(api)
    first = _raise(clean, m["id"])
    second = _raise(clean, m["id"], "critical", "Completion date passed")
    _raise(clean, other["id"])
    _raise(clean, None, "info", "A contact changed")

    reader = make_client(Role.READ_ONLY)
    mine = reader.get(f"/api/v1/matters/{m['id']}/alerts").json()["data"]
    assert [a["id"] for a in mine] == [second, first]  # newest first
    assert mine[0]["severity"] == "critical"
    assert mine[0]["source"] == "workflow:fee watch"
    assert len(reader.get("/api/v1/alerts").json()["data"]) == 4
    assert [
        a["id"]
        for a in reader.get("/api/v1/alerts", params={"matter_id": m["id"], "severity": "critical"}).json()[
            "data"
        ]
    ] == [second]
    assert reader.post(f"/api/v1/alerts/{first}/acknowledge").status_code == 403

    staff = make_client(Role.STAFF)
    acked = staff.post(f"/api/v1/alerts/{first}/acknowledge").json()
    assert acked["acknowledged"] is True
    assert acked["acknowledged_at"]
    again = staff.post(f"/api/v1/alerts/{first}/acknowledge").json()
    assert again["acknowledged_at"] == acked["acknowledged_at"]  # idempotent
    open_ = reader.get(f"/api/v1/matters/{m['id']}/alerts", params={"acknowledged": False}).json()["data"]
    assert [a["id"] for a in open_] == [second]
    done = reader.get("/api/v1/alerts", params={"acknowledged": True}).json()["data"]
    assert [a["id"] for a in done] == [first]
    assert reader.get(f"/api/v1/alerts/{first}").json()["acknowledged"] is True

    types = [e["type"] for e in api.get("/api/v1/events", params={"type": "alert.*"}).json()["data"]]
    assert types == ["alert.raised"] * 4 + ["alert.acknowledged"]
    assert api.get(f"/api/v1/alerts/{uuid.uuid4()}").status_code == 404
    assert api.get(f"/api/v1/matters/{uuid.uuid4()}/alerts").status_code == 404

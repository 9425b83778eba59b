"""What every endpoint shares: fields, paging, ordering, incremental filters, ETags, versions, errors,
rate limits, and the ``.json`` suffix being optional."""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta
from email.utils import format_datetime

import httpx
from hypothesis import given
from hypothesis import strategies as st

from tests.sandbox.conftest import Sandbox, clio_client, ok


def seed_contacts(sandbox: Sandbox, n: int) -> None:
    people = [
        {
            "type": "Person",
            "first_name": f"First{i}",
            "last_name": f"Last{i:04d}",
            "name": f"First{i} Last{i:04d}",
        }
        for i in range(n)
    ]
    with sandbox.admin() as admin:
        assert ok(admin.post("/seed", json={"contacts": people}))["loaded"] == {"contacts": n}


def test_fields_default_nested_and_invalid(clio: httpx.Client) -> None:
    client = ok(clio.post("/contacts", json={"data": {"type": "Company", "name": "Acme Ltd"}}), 201)["data"]
    assert set(client) == {"id", "etag"}  # the default: id and etag only
    matter = ok(
        clio.post("/matters", json={"data": {"description": "Acme v Beta", "client": {"id": client["id"]}}}),
        201,
    )
    mid = matter["data"]["id"]
    nested_default = ok(clio.get(f"/matters/{mid}", params={"fields": "id,client"}))["data"]
    assert nested_default == {"id": mid, "client": {"id": client["id"], "etag": client["etag"]}}
    chosen = ok(clio.get(f"/matters/{mid}", params={"fields": "client{name,type}"}))["data"]
    assert chosen == {"client": {"name": "Acme Ltd", "type": "Company"}}
    deep = clio.get(f"/matters/{mid}", params={"fields": "client{company{name}}"})
    assert deep.status_code == 400
    assert deep.json()["error"]["type"] == "BadRequestError"
    unknown = clio.get(f"/matters/{mid}", params={"fields": "id,colour"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "Invalid field: colour"
    unknown_nested = clio.get(f"/matters/{mid}", params={"fields": "client{shoe_size}"})
    assert unknown_nested.json()["error"]["message"] == "Invalid field: client{shoe_size}"


def test_cursor_paging_through_a_thousand_contacts(sandbox: Sandbox, clio: httpx.Client) -> None:
    seed_contacts(sandbox, 1000)
    seen: list[int] = []
    url: str | None = "/contacts.json"
    params: dict[str, str] | None = {"fields": "id,name", "limit": "200"}
    pages = 0
    while url:
        page = ok(clio.get(url, params=params))
        pages += 1
        seen += [c["id"] for c in page["data"]]
        url, params = page["meta"]["paging"].get("next"), None
        assert page["meta"]["records"] == 1000
    assert pages == 5
    assert seen == sorted(seen)
    assert len(set(seen)) == 1000
    assert clio.get("/contacts", params={"limit": "201"}).status_code == 400


def test_offset_paging_with_order_and_its_ten_thousand_cap(sandbox: Sandbox, clio: httpx.Client) -> None:
    seed_contacts(sandbox, 30)
    expected = sorted((f"First{i} Last{i:04d}" for i in range(30)), key=str.lower, reverse=True)
    first = ok(clio.get("/contacts", params={"order": "name(desc)", "limit": "10", "fields": "name"}))
    assert [c["name"] for c in first["data"]] == expected[:10]
    assert "offset=10" in first["meta"]["paging"]["next"]
    second = ok(clio.get(first["meta"]["paging"]["next"]))
    assert [c["name"] for c in second["data"]] == expected[10:20]
    capped = clio.get("/contacts", params={"offset": "10000", "limit": "200"})
    assert capped.status_code == 422
    assert capped.json()["error"]["type"] == "ArgumentError"
    assert clio.get("/contacts", params={"order": "shoe_size(asc)"}).status_code == 400


def test_ids_query_and_since_filters(sandbox: Sandbox, clio: httpx.Client) -> None:
    a = ok(clio.post("/contacts", json={"data": {"type": "Company", "name": "Alpha Ltd"}}), 201)["data"]
    b = ok(clio.post("/contacts", json={"data": {"type": "Company", "name": "Beta Ltd"}}), 201)["data"]
    picked = ok(clio.get("/contacts", params=[("ids[]", str(b["id"])), ("fields", "id")]))["data"]
    assert picked == [{"id": b["id"]}]
    found = ok(clio.get("/contacts", params={"query": "alp", "fields": "id"}))["data"]
    assert found == [{"id": a["id"]}]
    with sandbox.admin() as admin:
        ok(admin.post("/clock", json={"advance_seconds": 3600}))
    since = (datetime.now().astimezone() + timedelta(minutes=30)).isoformat(timespec="seconds")
    ok(clio.patch(f"/contacts/{a['id']}", json={"data": {"name": "Alpha Holdings"}}))
    changed = ok(clio.get("/contacts", params={"updated_since": since, "fields": "id,name"}))["data"]
    assert changed == [{"id": a["id"], "name": "Alpha Holdings"}]
    assert ok(clio.get("/contacts", params={"created_since": since}))["data"] == []
    assert clio.get("/contacts", params={"updated_since": "yesterday"}).status_code == 400


def test_etags_conditional_get_and_if_match(clio: httpx.Client) -> None:
    created = clio.post("/contacts", json={"data": {"type": "Company", "name": "Acme"}})
    record = ok(created, 201)["data"]
    assert created.headers["etag"] == record["etag"]
    assert record["etag"].startswith('"')
    assert record["etag"].endswith('"')
    url = f"/contacts/{record['id']}.json"
    assert clio.get(url, headers={"If-None-Match": record["etag"]}).status_code == 304
    modified = clio.get(url).headers["last-modified"]
    assert clio.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    stale = clio.patch(url, headers={"If-Match": '"not-it"'}, json={"data": {"name": "Acme 2"}})
    assert stale.status_code == 412
    assert ok(clio.get(url, params={"fields": "name"}))["data"]["name"] == "Acme"  # nothing written
    fresh = ok(clio.patch(url, headers={"If-Match": record["etag"]}, json={"data": {"name": "Acme 2"}}))[
        "data"
    ]
    assert fresh["etag"] != record["etag"]
    assert clio.get(url, headers={"If-None-Match": record["etag"]}).status_code == 200
    past = format_datetime(datetime.now().astimezone() - timedelta(days=1), usegmt=False)
    assert clio.get(url, headers={"If-Modified-Since": past}).status_code == 200


def test_versions_errors_and_suffixes(clio: httpx.Client) -> None:
    plain = clio.get("/users/who_am_i")
    assert plain.headers["x-api-version"] == "4.0.9"
    pinned = clio.get("/users/who_am_i.json", headers={"X-API-VERSION": "4.0.4"})
    assert pinned.status_code == 200
    assert pinned.headers["x-api-version"] == "4.0.4"
    gone = clio.get("/users/who_am_i", headers={"X-API-VERSION": "3.9.0"})
    assert gone.status_code == 410
    assert set(gone.json()["error"]) == {"type", "message"}
    missing = clio.get("/contacts/999999.json")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "RecordNotFound"
    bad_body = clio.post("/contacts", content=b"not json", headers={"Content-Type": "application/json"})
    assert bad_body.status_code == 400
    anonymous = httpx.get(str(clio.base_url) + "/contacts")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "InvalidTokenError"


def test_rate_limit_429_with_retry_after_then_recovery(sandbox: Sandbox) -> None:
    with sandbox.admin() as admin:
        ok(admin.patch("/settings", json={"rate_limit": 5}))
    token = sandbox.token()
    with clio_client(sandbox, token) as clio:
        statuses = []
        for _ in range(5):
            r = clio.get("/users/who_am_i")
            statuses.append(r.status_code)
            assert r.headers["x-ratelimit-limit"] == "5"
        assert statuses == [200] * 5
        assert r.headers["x-ratelimit-remaining"] == "0"
        limited = clio.get("/users/who_am_i")
        assert limited.status_code == 429
        retry_after = int(limited.headers["retry-after"])
        reset = int(limited.headers["x-ratelimit-reset"])
        assert 1 <= retry_after <= 60
        assert abs(reset - (time.time() + retry_after)) <= 2
        assert limited.json()["error"]["type"] == "RateLimited"
        with sandbox.admin() as admin:
            assert admin.get("/requests").json()["rate_limited_by_token"] == {token: 1}
        with clio_client(sandbox) as other:  # limits are per token
            assert other.get("/users/who_am_i").status_code == 200
        with sandbox.admin() as admin:  # let the window pass on the sandbox clock
            ok(admin.post("/clock", json={"advance_seconds": math.ceil(retry_after) + 1}))
        assert clio.get("/users/who_am_i").status_code == 200


def test_requests_are_counted_per_endpoint_and_token(sandbox: Sandbox) -> None:
    token = sandbox.token()
    with clio_client(sandbox, token) as clio:
        for _ in range(3):
            ok(clio.get("/contacts.json"))
        ok(clio.post("/contacts", json={"data": {"type": "Company", "name": "Acme"}}), 201)
        clio.get("/contacts/1")
    with sandbox.admin() as admin:
        counts = ok(admin.get("/requests"))
    assert counts["by_endpoint"]["GET /api/v4/contacts"] == 3
    assert counts["by_endpoint"]["POST /api/v4/contacts"] == 1
    assert counts["by_endpoint"]["GET /api/v4/contacts/{id}"] == 1
    assert counts["by_token"][token] == 5


@given(st.text(alphabet="abcdeilmnorstu_{},", max_size=40))
def test_any_fields_parameter_is_a_selection_or_a_400(raw: str) -> None:
    from casebridge.sandbox.clio import fields
    from casebridge.sandbox.clio.errors import ClioError

    outcome: tuple[int, str] = (200, "")
    try:
        fields.check(fields.parse(raw), "Matter")
    except ClioError as exc:  # the only way it may fail: nothing else escapes (no 500)
        outcome = (exc.status, exc.type)
    assert outcome in {(200, ""), (400, "BadRequestError")}


def test_the_rate_limit_window_is_configurable(sandbox: Sandbox) -> None:
    with sandbox.admin() as admin:
        ok(admin.patch("/settings", json={"rate_limit": 2, "rate_limit_window": 2}))
        assert admin.patch("/settings", json={"rate_limit_window": 0.5}).status_code == 422
    with clio_client(sandbox) as clio:
        assert [clio.get("/users/who_am_i").status_code for _ in range(3)] == [200, 200, 429]
        reset = int(clio.get("/users/who_am_i").headers["x-ratelimit-reset"])
        assert reset - time.time() <= 3
        time.sleep(max(0.0, reset - time.time()) + 0.1)
        assert clio.get("/users/who_am_i").status_code == 200

"""Documents over HTTP: uploads (multipart and raw), versions, downloads, trash, purge and the size limit."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from casebridge.db.session import unit_of_work
from casebridge.db.types import utcnow
from casebridge.documents.service import purge_expired
from casebridge.kit.context import Role
from tests.conftest import Backend, LiveServer, MakeClient
from tests.factories import create_matter

DOCS = "/api/v1/documents"
MiB = 1024 * 1024


def upload(
    client: httpx.Client,
    content: bytes,
    *,
    filename: str = "letter.pdf",
    content_type: str = "application/pdf",
    **fields: str,
) -> httpx.Response:
    """Multipart create."""
    return client.post(DOCS, data=fields, files={"file": (filename, content, content_type)})


def upload_raw(
    client: httpx.Client,
    content: bytes,
    *,
    content_type: str = "text/plain",
    headers: dict[str, str] | None = None,
    **params: str,
) -> httpx.Response:
    return client.post(
        DOCS, params=params, content=content, headers={"Content-Type": content_type, **(headers or {})}
    )


def ok(response: httpx.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_files(data_dir: Path) -> set[Path]:
    return {p for p in (data_dir / "blobs").rglob("*") if p.is_file()}


def temp_files(data_dir: Path) -> set[Path]:
    return set((data_dir / "tmp").glob("*"))


def blob_path(data_dir: Path, digest: str) -> Path:
    return data_dir / "blobs" / digest[:2] / digest[2:4] / digest


def document_events(client: httpx.Client) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get(
        "/api/v1/events", params={"entity_type": "document", "limit": 200}
    ).json()["data"]
    return events


@pytest.fixture
def matter(api: httpx.Client) -> dict[str, Any]:
    return create_matter(api)


def test_multipart_create_then_versions_and_downloads(
    api: httpx.Client, matter: dict[str, Any], data_dir: Path
) -> None:
    v1 = b"%PDF-1.7 first draft " + os.urandom(3000)
    r = upload(
        api, v1, filename="Résumé draft.pdf", matter_id=matter["id"], folder_path="/Pleadings/ Drafts/"
    )
    doc = ok(r)
    assert r.headers["location"].endswith(f"{DOCS}/{doc['id']}")
    assert r.headers["etag"] == doc["etag"]
    assert doc["matter_id"] == matter["id"]
    assert doc["name"] == "Résumé draft.pdf"  # defaults to the filename
    assert doc["folder_path"] == "Pleadings/Drafts"
    assert doc["version_count"] == 1
    assert doc["deleted_at"] is None
    assert doc["created_by"] == "test-admin (admin)"
    latest = doc["latest_version"]
    assert latest["number"] == 1
    assert latest["sha256"] == sha(v1)
    assert latest["size_bytes"] == len(v1)
    assert latest["content_type"] == "application/pdf"
    assert latest["filename"] == "Résumé draft.pdf"
    assert latest["uploaded_by"] == "test-admin (admin)"
    assert blob_path(data_dir, sha(v1)).read_bytes() == v1

    got = api.get(f"{DOCS}/{doc['id']}")
    assert got.status_code == 200
    assert got.json() == doc
    assert got.headers["etag"] == doc["etag"]
    assert api.get(f"{DOCS}/{doc['id']}", headers={"If-None-Match": doc["etag"]}).status_code == 304

    content = api.get(f"{DOCS}/{doc['id']}/content")
    assert content.status_code == 200
    assert content.content == v1
    assert content.headers["content-type"] == "application/pdf"
    assert content.headers["etag"] == f'"{sha(v1)}"'
    digest = base64.b64encode(hashlib.sha256(v1).digest()).decode()
    assert content.headers["repr-digest"] == f"sha-256=:{digest}:"
    assert content.headers["digest"] == f"sha-256={digest}"
    assert content.headers["content-disposition"] == (
        "attachment; filename=\"R_sum_ draft.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20draft.pdf"
    )
    not_modified = api.get(f"{DOCS}/{doc['id']}/content", headers={"If-None-Match": f'"{sha(v1)}"'})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    ranged = api.get(f"{DOCS}/{doc['id']}/content", headers={"Range": "bytes=0-7"})
    assert ranged.status_code == 206
    assert ranged.content == v1[:8]

    v2 = b"second draft, as plain text"
    r2 = api.post(
        f"{DOCS}/{doc['id']}/versions",
        params={"filename": "draft-2.txt"},
        content=v2,
        headers={"Content-Type": "text/plain; charset=utf-8", "If-Match": doc["etag"]},
    )
    after = ok(r2)
    assert r2.headers["location"].endswith(f"{DOCS}/{doc['id']}/versions/2/content")
    assert after["version_count"] == 2
    assert after["name"] == "Résumé draft.pdf"
    assert after["etag"] != doc["etag"]
    assert after["latest_version"]["number"] == 2
    assert after["latest_version"]["sha256"] == sha(v2)
    assert after["latest_version"]["filename"] == "draft-2.txt"
    assert after["latest_version"]["content_type"] == "text/plain; charset=utf-8"

    # a third version, multipart, with a stale If-Match: 412 and nothing added
    stale = api.post(
        f"{DOCS}/{doc['id']}/versions",
        files={"file": ("x.bin", b"stale", "application/octet-stream")},
        headers={"If-Match": doc["etag"]},
    )
    assert stale.status_code == 412
    v3 = b"third"
    after3 = ok(
        api.post(f"{DOCS}/{doc['id']}/versions", files={"file": ("v3.bin", v3, "application/octet-stream")})
    )
    assert after3["latest_version"]["number"] == 3
    assert after3["latest_version"]["filename"] == "v3.bin"

    assert api.get(f"{DOCS}/{doc['id']}/content").content == v3
    one = api.get(f"{DOCS}/{doc['id']}/versions/1/content")
    assert one.content == v1
    assert one.headers["etag"] == f'"{sha(v1)}"'
    assert api.get(f"{DOCS}/{doc['id']}/versions/2/content").content == v2
    missing = api.get(f"{DOCS}/{doc['id']}/versions/9/content")
    assert missing.status_code == 404
    assert "no version 9" in missing.json()["detail"]

    versions = ok(api.get(f"{DOCS}/{doc['id']}/versions"), 200)["data"]
    assert [(v["number"], v["sha256"]) for v in versions] == [(1, sha(v1)), (2, sha(v2)), (3, sha(v3))]

    history = ok(api.get(f"{DOCS}/{doc['id']}/history"), 200)["data"]
    assert [e["type"] for e in history] == [
        "document.created",
        "document.version_added",
        "document.version_added",
    ]
    added = history[1]["changes"]
    assert added["version_count"] == {"old": 1, "new": 2}
    assert added["latest_version"]["new"]["sha256"] == sha(v2)
    assert history[0]["changes"]["name"] == {"old": None, "new": "Résumé draft.pdf"}


def test_raw_create_with_query_parameters(api: httpx.Client, matter: dict[str, Any]) -> None:
    body = b"col1,col2\n1,2\n"
    r = upload_raw(
        api, body, content_type="text/csv", matter_id=matter["id"], filename="C:\\exports\\ledger.csv"
    )
    doc = ok(r)
    assert doc["name"] == "ledger.csv"
    assert doc["folder_path"] == ""
    assert doc["latest_version"]["content_type"] == "text/csv"
    assert doc["latest_version"]["filename"] == "ledger.csv"
    assert doc["latest_version"]["sha256"] == sha(body)
    download = api.get(f"{DOCS}/{doc['id']}/content")
    assert download.content == body
    assert download.headers["content-type"] == "text/csv"

    named = ok(upload_raw(api, b"{}", content_type="application/json", matter_id=matter["id"], name="Data"))
    assert named["name"] == "Data"
    assert named["latest_version"]["filename"] == "Data"

    no_type = ok(api.post(DOCS, params={"matter_id": matter["id"], "name": "blob"}, content=b"\x00\x01"))
    assert no_type["latest_version"]["content_type"] == "application/octet-stream"


def test_bad_input_is_refused_with_field_errors_and_nothing_stored(
    api: httpx.Client, matter: dict[str, Any], data_dir: Path
) -> None:
    blobs_before = blob_files(data_dir)
    unknown = "00000000-0000-0000-0000-000000000000"
    cases: list[tuple[httpx.Response, str]] = [
        (upload_raw(api, b"orphan-1", matter_id=unknown, name="x"), "query.matter_id"),
        (upload(api, b"orphan-2", matter_id=unknown), "body.matter_id"),
        (upload_raw(api, b"orphan-3", name="x"), "query.matter_id"),
        (upload(api, b"orphan-4"), "body.matter_id"),
        (upload_raw(api, b"orphan-5", matter_id=matter["id"]), "query.name"),
        (upload_raw(api, b"orphan-6", matter_id=matter["id"], name="a/b"), "query.name"),
        (upload(api, b"orphan-7", matter_id=matter["id"], folder_path="../etc"), "body.folder_path"),
        (upload(api, b"orphan-8", matter_id=matter["id"], folder_path="a/../../b"), "body.folder_path"),
        (upload(api, b"orphan-9", matter_id=matter["id"], folder_path="a//b"), "body.folder_path"),
        (
            upload_raw(api, b"orphan-10", matter_id=matter["id"], name="n", folder_path="..\\x"),
            "query.folder_path",
        ),
        (upload(api, b"orphan-11", matter_id=matter["id"], colour="red"), "body.colour"),
        (upload_raw(api, b"orphan-12", matter_id="not-a-uuid", name="x"), "query.matter_id"),
        (upload(api, b"orphan-13", matter_id="not-a-uuid"), "body.matter_id"),
    ]
    for response, field in cases:
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in response.json()["errors"]}, (field, response.text)

    # Fields sent after the file: checked once the body is read; the stored bytes are removed again.
    late = api.post(
        DOCS,
        files=[
            ("file", ("late.txt", b"orphan-late", "text/plain")),
            ("matter_id", (None, unknown)),
        ],
    )
    assert late.status_code == 422, late.text
    assert late.json()["errors"][0]["field"] == "body.matter_id"

    no_file = api.post(DOCS, data={"matter_id": matter["id"], "name": "x"}, files={"other": ("a", b"b")})
    assert no_file.status_code == 422
    assert no_file.json()["errors"][0]["field"] == "body.other"
    only_fields = api.post(DOCS, files=[("matter_id", (None, matter["id"])), ("name", (None, "x"))])
    assert only_fields.status_code == 422
    assert only_fields.json()["errors"][0]["field"] == "body.file"
    two_files = api.post(
        DOCS,
        data={"matter_id": matter["id"]},
        files=[("file", ("a.txt", b"orphan-a")), ("file", ("b.txt", b"orphan-b"))],
    )
    assert two_files.status_code == 422
    broken = api.post(
        DOCS,
        content=b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\ntruncated',
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code == 400
    assert "closing boundary" in broken.json()["detail"]

    assert blob_files(data_dir) == blobs_before
    assert temp_files(data_dir) == set()
    assert api.get(DOCS, params={"include_deleted": True}).json()["data"] == []
    assert document_events(api) == []


def test_list_filters_and_paging(api: httpx.Client) -> None:
    m1 = create_matter(api)
    m2 = create_matter(api)
    made = [
        ok(upload(api, f"doc {i}".encode(), matter_id=m1["id"], name=f"Doc {i:02d}.txt", folder_path="Corr"))
        for i in range(7)
    ]
    sub = ok(upload(api, b"sub", matter_id=m1["id"], name="Inner note.txt", folder_path="Corr/Inner"))
    top = ok(upload(api, b"top", matter_id=m1["id"], name="Top level.txt"))
    other = ok(upload(api, b"other", matter_id=m2["id"], name="Other matter.txt", folder_path="Corr"))

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, "matter_id": m1["id"], "folder_path": "Corr", "order": "-name"}
        if cursor:
            params["cursor"] = cursor
        page = ok(api.get(DOCS, params=params), 200)
        seen += [d["id"] for d in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [d["id"] for d in reversed(made)]

    def ids(**params: Any) -> set[str]:
        return {d["id"] for d in ok(api.get(DOCS, params={"limit": 200, **params}), 200)["data"]}

    assert ids(matter_id=m1["id"], folder_path="/Corr/", recursive=True) == {d["id"] for d in made} | {
        sub["id"]
    }
    assert ids(matter_id=m1["id"], folder_path="") == {top["id"]}
    assert ids(folder_path="Corr/Inner") == {sub["id"]}
    assert ids(matter_id=m2["id"]) == {other["id"]}
    assert ids(q="INNER") == {sub["id"]}
    assert ids(q="%") == set()
    assert ids(updated_since="2999-01-01T00:00:00Z") == set()
    assert len(ids(updated_since="2000-01-01T00:00:00")) == 10

    api.delete(f"{DOCS}/{top['id']}")
    assert top["id"] not in ids()
    assert top["id"] in ids(include_deleted=True)
    assert ids(deleted_only=True) == {top["id"]}

    bad = api.get(DOCS, params={"folder_path": "a/../b"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "query.folder_path"
    bad_order = api.get(DOCS, params={"order": "size"})
    assert bad_order.status_code == 422


def test_rename_and_move_with_if_match(api: httpx.Client, matter: dict[str, Any]) -> None:
    doc = ok(upload(api, b"contract", matter_id=matter["id"], name="Contract.docx"))
    stale = api.patch(f"{DOCS}/{doc['id']}", json={"name": "X"}, headers={"If-Match": '"nope"'})
    assert stale.status_code == 412
    assert stale.json()["current_etag"] == doc["etag"]

    r = api.patch(
        f"{DOCS}/{doc['id']}",
        json={"name": " Contract (signed).docx ", "folder_path": "Completion/Signed/"},
        headers={"If-Match": doc["etag"]},
    )
    moved = ok(r, 200)
    assert (moved["name"], moved["folder_path"]) == ("Contract (signed).docx", "Completion/Signed")
    assert r.headers["etag"] == moved["etag"] != doc["etag"]
    assert moved["latest_version"] == doc["latest_version"]

    again = api.patch(f"{DOCS}/{doc['id']}", json={"name": "Contract (signed).docx"})
    assert ok(again, 200)["etag"] == moved["etag"]  # no change, no new version of the row

    for body, field in [
        ({"folder_path": "../../other-matter"}, "body.folder_path"),
        ({"folder_path": "a//b"}, "body.folder_path"),
        ({"folder_path": None}, "body.folder_path"),
        ({"name": ""}, "body.name"),
        ({"name": "a/b"}, "body.name"),
        ({"matter_id": matter["id"]}, "body.matter_id"),
    ]:
        r = api.patch(f"{DOCS}/{doc['id']}", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field

    history = api.get(f"{DOCS}/{doc['id']}/history").json()["data"]
    assert [e["type"] for e in history] == ["document.created", "document.updated"]
    assert history[1]["changes"] == {
        "name": {"old": "Contract.docx", "new": "Contract (signed).docx"},
        "folder_path": {"old": "", "new": "Completion/Signed"},
    }


def test_trash_and_restore(api: httpx.Client, matter: dict[str, Any]) -> None:
    doc = ok(upload(api, b"to be binned", matter_id=matter["id"], name="Bin me.txt"))
    url = f"{DOCS}/{doc['id']}"
    assert api.delete(url, headers={"If-Match": '"stale"'}).status_code == 412

    trashed = ok(api.delete(url, headers={"If-Match": doc["etag"]}), 200)
    assert trashed["deleted_at"] is not None
    assert doc["id"] not in {d["id"] for d in api.get(DOCS).json()["data"]}
    assert api.get(url).status_code == 200  # the metadata stays readable
    gone = api.get(f"{url}/content")
    assert gone.status_code == 404
    assert "in the trash" in gone.json()["detail"]
    assert api.get(f"{url}/versions/1/content").status_code == 404
    assert api.get(f"{url}/content", params={"include_deleted": True}).content == b"to be binned"
    refused = api.post(f"{url}/versions", content=b"new", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 409
    assert refused.json()["type"] == "/problems/in-trash"
    assert api.patch(url, json={"name": "x"}).status_code == 409
    assert ok(api.delete(url), 200)["etag"] == trashed["etag"]  # already in the trash: unchanged

    restored = ok(api.post(f"{url}/restore"), 200)
    assert restored["deleted_at"] is None
    assert api.get(f"{url}/content").content == b"to be binned"
    assert doc["id"] in {d["id"] for d in api.get(DOCS).json()["data"]}

    history = api.get(f"{url}/history").json()["data"]
    assert [e["type"] for e in history] == ["document.created", "document.deleted", "document.restored"]
    assert history[1]["changes"]["deleted_at"]["old"] is None
    assert history[2]["changes"]["deleted_at"]["new"] is None


def test_purge_is_admin_only_and_removes_the_bytes(make_client: MakeClient, data_dir: Path) -> None:
    admin = make_client(Role.ADMIN)
    staff = make_client(Role.STAFF)
    reader = make_client(Role.READ_ONLY)
    matter = create_matter(admin)
    shared = b"shared bytes " + os.urandom(16)
    own = b"only here " + os.urandom(16)
    doc = ok(upload(staff, own, matter_id=matter["id"], name="Purge me.txt"))
    ok(api_post_version(staff, doc["id"], shared))
    keeper = ok(upload(staff, shared, matter_id=matter["id"], name="Keeper.txt"))
    url = f"{DOCS}/{doc['id']}"

    assert reader.get(url).status_code == 200
    assert upload(reader, b"x", matter_id=matter["id"]).status_code == 403
    assert reader.delete(url).status_code == 403
    assert admin.delete(f"{url}/purge").status_code == 409  # not in the trash
    ok(staff.delete(url), 200)
    refused = staff.delete(f"{url}/purge")
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"]

    assert blob_path(data_dir, sha(own)).exists()
    purged = admin.delete(f"{url}/purge")
    assert purged.status_code == 204
    assert admin.get(url).status_code == 404
    assert not blob_path(data_dir, sha(own)).exists()
    assert blob_path(data_dir, sha(shared)).exists()  # still version 1 of the keeper
    assert admin.get(f"{DOCS}/{keeper['id']}/content").content == shared
    history = admin.get(f"{url}/history").json()["data"]
    assert [e["type"] for e in history][-1] == "document.purged"
    assert history[-1]["changes"]["name"] == {"old": "Purge me.txt", "new": None}
    assert admin.get(f"{DOCS}/00000000-0000-0000-0000-000000000000/history").status_code == 404


def api_post_version(client: httpx.Client, document_id: str, content: bytes) -> httpx.Response:
    return client.post(
        f"{DOCS}/{document_id}/versions", content=content, headers={"Content-Type": "text/plain"}
    )


def test_identical_bytes_stored_once(api: httpx.Client, matter: dict[str, Any], data_dir: Path) -> None:
    data = b"the same bytes " + os.urandom(32)
    a = ok(upload(api, data, matter_id=matter["id"], name="A.txt"))
    before = blob_files(data_dir)
    b = ok(upload_raw(api, data, matter_id=matter["id"], name="B.txt"))
    assert a["latest_version"]["sha256"] == b["latest_version"]["sha256"] == sha(data)
    assert blob_files(data_dir) == before
    assert [p for p in before if p.name == sha(data)] == [blob_path(data_dir, sha(data))]


def test_purge_expired(api: httpx.Client, matter: dict[str, Any], live_server: LiveServer) -> None:
    backend: Backend = live_server.backend
    data_dir = backend.settings.data_dir
    old = ok(upload(api, b"old " + os.urandom(8), matter_id=matter["id"], name="Old.txt"))
    recent = ok(upload(api, b"recent " + os.urandom(8), matter_id=matter["id"], name="Recent.txt"))
    kept = ok(upload(api, b"kept " + os.urandom(8), matter_id=matter["id"], name="Kept.txt"))
    ok(api.delete(f"{DOCS}/{old['id']}"), 200)
    stray = data_dir / "tmp" / "upload-crashed.part"
    stray.write_bytes(b"half an upload")
    two_hours_ago = time.time() - 7200
    os.utime(stray, (two_hours_ago, two_hours_ago))

    retention = backend.settings.trash_retention_days
    with unit_of_work(backend.db.writer) as session:
        assert purge_expired(session, backend.settings, now=utcnow()) == 0
    assert not stray.exists()  # stray temp files go whatever the documents do
    assert api.get(f"{DOCS}/{old['id']}").status_code == 200

    ok(api.delete(f"{DOCS}/{recent['id']}"), 200)
    later = utcnow() + timedelta(days=retention, hours=1)
    with unit_of_work(backend.db.writer) as session:
        # both are past retention now
        assert purge_expired(session, backend.settings, now=later) == 2
    for doc in (old, recent):
        assert api.get(f"{DOCS}/{doc['id']}").status_code == 404
        assert not blob_path(data_dir, doc["latest_version"]["sha256"]).exists()
        assert api.get(f"{DOCS}/{doc['id']}/history").json()["data"][-1]["type"] == "document.purged"
    assert api.get(f"{DOCS}/{kept['id']}/content").status_code == 200
    assert blob_path(data_dir, kept["latest_version"]["sha256"]).exists()


def _raw_http(live_server: LiveServer, request: bytes) -> tuple[int, bytes]:
    """Send bytes on a fresh connection; return the status and body of the response."""
    url = urlsplit(live_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


def test_uploads_over_the_limit_get_413_and_leave_nothing(
    api: httpx.Client, matter: dict[str, Any], live_server: LiveServer, data_dir: Path
) -> None:
    limit = live_server.backend.settings.max_upload_bytes
    blobs_before = blob_files(data_dir)

    # Content-Length above the limit: refused before a byte of the body is read.
    query = urlencode({"matter_id": matter["id"], "name": "huge.bin"})
    status, body = _raw_http(
        live_server,
        (
            f"POST {DOCS}?{query} HTTP/1.1\r\nHost: test\r\n"
            f"Authorization: {api.headers['authorization']}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {limit + 1}\r\n\r\n"
        ).encode()
        + b"just the start",
    )
    assert status == 413
    assert f"limit of {limit} bytes (CASEBRIDGE_MAX_UPLOAD_BYTES)".encode() in body

    # The same for a multipart body that announces more than the limit plus form overhead.
    status, _ = _raw_http(
        live_server,
        (
            f"POST {DOCS} HTTP/1.1\r\nHost: test\r\nAuthorization: {api.headers['authorization']}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {limit * 2}\r\n\r\n"
        ).encode(),
    )
    assert status == 413

    # No Content-Length (chunked): stopped the moment the limit is crossed.
    chunk = os.urandom(MiB)

    def body_over_limit() -> Iterator[bytes]:
        for _ in range(limit // MiB + 2):
            yield chunk

    raw = api.post(
        DOCS,
        params={"matter_id": matter["id"], "name": "huge.bin"},
        content=body_over_limit(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert raw.status_code == 413, raw.text
    problem = raw.json()
    assert problem["type"] == "/problems/content-too-large"
    assert problem["limit_bytes"] == limit

    def multipart_over_limit() -> Iterator[bytes]:
        yield (
            b'--b\r\nContent-Disposition: form-data; name="matter_id"\r\n\r\n'
            + matter["id"].encode()
            + b'\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="huge.bin"\r\n\r\n'
        )
        yield from body_over_limit()

    form = api.post(
        DOCS, content=multipart_over_limit(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert form.status_code == 413, form.text

    version = api.post(
        f"{DOCS}/{ok(upload(api, b'small', matter_id=matter['id']))['id']}/versions",
        content=body_over_limit(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert version.status_code == 413

    assert [d["name"] for d in api.get(DOCS).json()["data"]] == ["letter.pdf"]
    assert [e["type"] for e in document_events(api)] == ["document.created"]
    assert blob_files(data_dir) - blobs_before == {blob_path(data_dir, sha(b"small"))}
    assert temp_files(data_dir) == set()
    assert api.get("/healthz").status_code == 200  # the server is fine


def test_idempotent_raw_upload(api: httpx.Client, matter: dict[str, Any]) -> None:
    body = b"idempotent " + os.urandom(64)
    params = {"matter_id": matter["id"], "name": "Once.txt"}
    headers = {"Idempotency-Key": "upload-once-1"}
    first = upload_raw(api, body, headers=headers, **params)
    doc = ok(first)
    assert "idempotent-replayed" not in first.headers
    again = upload_raw(api, body, headers=headers, **params)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == doc
    assert again.headers["location"] == first.headers["location"]
    different = upload_raw(api, body + b"!", headers=headers, **params)
    assert different.status_code == 422
    assert different.json()["type"] == "/problems/idempotency-key-reused"
    assert [d["id"] for d in api.get(DOCS).json()["data"]] == [doc["id"]]

    # multipart: the raw body is hashed as it streams, so the same form (same boundary) replays too
    key = {"Idempotency-Key": "upload-once-2", "Content-Type": "multipart/form-data; boundary=fixed-b"}
    files = {"file": ("a.txt", b"form bytes", "text/plain")}
    form = api.post(DOCS, data={"matter_id": matter["id"]}, files=files, headers=key)
    ok(form)
    replay = api.post(DOCS, data={"matter_id": matter["id"]}, files=files, headers=key)
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json() == form.json()
    assert len(api.get(DOCS).json()["data"]) == 2


def test_unknown_document(api: httpx.Client) -> None:
    missing = f"{DOCS}/00000000-0000-0000-0000-000000000000"
    assert api.get(missing).status_code == 404
    assert api.get(f"{missing}/content").status_code == 404
    assert api.get(f"{missing}/versions").status_code == 404
    r = api_post_version(api, "00000000-0000-0000-0000-000000000000", b"x")
    assert r.status_code == 404
    assert r.json()["type"] == "/problems/not-found"


def test_streaming_upload_holds_no_write_lock(make_client: MakeClient) -> None:
    """While an upload's bytes arrive, other writes go through (SQLite: no BEGIN IMMEDIATE yet)."""
    uploader = make_client(Role.STAFF)
    other = make_client(Role.STAFF)
    matter = create_matter(other)
    doc = ok(upload(other, b"existing", matter_id=matter["id"], name="Existing.txt"))
    midway = threading.Event()
    release = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield b"first half, "
        midway.set()
        release.wait(60)  # longer than SQLite's 30 s busy timeout: a held lock would fail the writes below
        yield b"second half"

    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            uploader.post,
            DOCS,
            params={"matter_id": matter["id"], "name": "Slow.txt"},
            content=slow_body(),
            headers={"Content-Type": "text/plain"},
        )
        assert midway.wait(10)
        try:
            renamed = other.patch(f"{DOCS}/{doc['id']}", json={"name": "Renamed.txt"})
            assert renamed.status_code == 200, renamed.text
            made = upload(other, b"meanwhile", matter_id=matter["id"], name="Meanwhile.txt")
            assert made.status_code == 201, made.text
        finally:
            release.set()
        slow = ok(pending.result(timeout=30))
    assert slow["latest_version"]["sha256"] == sha(b"first half, second half")


def test_concurrent_versions_get_distinct_numbers(make_client: MakeClient) -> None:
    clients = [make_client(Role.STAFF, name=f"uploader-{i}") for i in range(4)]
    matter = create_matter(clients[0])
    doc = ok(upload(clients[0], b"v1", matter_id=matter["id"], name="Busy.txt"))
    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(
            pool.map(
                lambda pair: api_post_version(pair[1], doc["id"], f"from {pair[0]}".encode()),
                enumerate(clients),
            )
        )
    assert [r.status_code for r in results] == [201] * len(clients), [r.text for r in results]
    assert sorted(r.json()["latest_version"]["number"] for r in results) == [2, 3, 4, 5]
    versions = ok(clients[0].get(f"{DOCS}/{doc['id']}/versions"), 200)["data"]
    assert [v["number"] for v in versions] == [1, 2, 3, 4, 5]
    assert {v["uploaded_by"] for v in versions[1:]} == {f"uploader-{i} (staff)" for i in range(4)}

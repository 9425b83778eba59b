"""Documents: the three-step upload over real HTTP (create, PUT to put_url, confirm), new versions,
downloads of each version, refused uploads, hidden unfinished uploads, the trash, moves and filters."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from tests.sandbox.conftest import Sandbox, ok

UPLOAD_FIELDS = (
    "id,etag,name,filename,size,content_type,"
    "latest_document_version{id,uuid,put_url,put_headers,fully_uploaded,version_number,size}"
)
SHOW_FIELDS = "id,etag,name,filename,size,content_type,deleted_at,parent{id},matter{id},contact{id}"


def make_matter(clio: httpx.Client) -> tuple[int, int]:
    """A client contact and a matter, through the API; returns (contact id, matter id)."""
    contact = ok(clio.post("/contacts", json={"data": {"type": "Company", "name": "Acme Ltd"}}), 201)
    matter = ok(
        clio.post(
            "/matters", json={"data": {"description": "Acme v Beta", "client": {"id": contact["data"]["id"]}}}
        ),
        201,
    )
    return contact["data"]["id"], matter["data"]["id"]


def create(clio: httpx.Client, parent: dict[str, Any], name: str, **extra: Any) -> dict[str, Any]:
    """Step 1: the document (or a new version of one) and where to send the bytes."""
    body = {"data": {"name": name, "parent": parent, **extra}}
    created: dict[str, Any] = ok(
        clio.post("/documents.json", params={"fields": UPLOAD_FIELDS}, json=body), 201
    )["data"]
    return created


def put(version: dict[str, Any], content: bytes, **override: str | None) -> httpx.Response:
    """Step 2: the bytes to put_url with every put_headers header (no Clio auth); ``override`` changes
    or (with None) drops headers."""
    headers = {h["name"]: h["value"] for h in version["put_headers"]}
    for name, value in override.items():
        headers.pop(name.replace("_", "-"), None)
        if value is not None:
            headers[name.replace("_", "-")] = value
    return httpx.put(version["put_url"], content=content, headers=headers, timeout=30)


def confirm(clio: httpx.Client, document_id: int, uuid: str) -> httpx.Response:
    """Step 3: mark the version fully uploaded."""
    return clio.patch(
        f"/documents/{document_id}.json",
        params={"fields": UPLOAD_FIELDS},
        json={"data": {"uuid": uuid, "fully_uploaded": True}},
    )


def upload(
    clio: httpx.Client, parent: dict[str, Any], name: str, content: bytes, **extra: Any
) -> dict[str, Any]:
    created = create(clio, parent, name, **extra)
    version = created["latest_document_version"]
    assert put(version, content).status_code == 200
    done: dict[str, Any] = ok(confirm(clio, created["id"], version["uuid"]))["data"]
    return done


def download(clio: httpx.Client, document_id: int, **params: Any) -> httpx.Response:
    """The API's 303, then the bytes from where it points (no Clio auth)."""
    redirect = clio.get(f"/documents/{document_id}/download.json", params=params)
    assert redirect.status_code == 303, redirect.text
    return httpx.get(redirect.headers["location"], timeout=30)


def listed_ids(clio: httpx.Client, **params: Any) -> list[int]:
    return [d["id"] for d in ok(clio.get("/documents.json", params=params))["data"]]


def test_three_step_upload_then_a_new_version_and_a_download_of_each(
    sandbox: Sandbox, clio: httpx.Client
) -> None:
    _, matter_id = make_matter(clio)
    first = b"%PDF-1.7 engagement letter, first draft"
    created = create(clio, {"type": "Matter", "id": matter_id}, "Engagement letter.pdf")
    pending = created["latest_document_version"]
    assert pending["fully_uploaded"] is False
    assert pending["version_number"] == 1
    assert pending["put_url"].startswith(f"{sandbox.url}/_uploads/{pending['uuid']}?")
    assert {h["name"]: h["value"] for h in pending["put_headers"]} == {
        "Content-Type": "application/pdf",
        "x-amz-server-side-encryption": "AES256",
    }
    assert created["content_type"] == "application/pdf"  # inferred from the extension

    stored = put(pending, first)
    assert stored.status_code == 200
    assert stored.headers["etag"] == f'"{hashlib.md5(first).hexdigest()}"'
    assert stored.headers["x-amz-server-side-encryption"] == "AES256"

    done = ok(confirm(clio, created["id"], pending["uuid"]))["data"]
    assert done["size"] == len(first)
    assert done["filename"] == "Engagement letter.pdf"
    assert done["latest_document_version"]["fully_uploaded"] is True
    assert done["latest_document_version"]["put_url"] is None  # empty once uploaded
    assert done["latest_document_version"]["put_headers"] == []
    assert done["etag"] != created["etag"]
    doc = ok(clio.get(f"/documents/{created['id']}", params={"fields": SHOW_FIELDS}))["data"]
    assert doc["matter"] == {"id": matter_id}
    assert listed_ids(clio, matter_id=matter_id) == [created["id"]]

    # a new version: parent of type Document
    second = b"%PDF-1.7 engagement letter, signed, somewhat longer"
    again = create(clio, {"type": "Document", "id": created["id"]}, "Engagement letter (signed).pdf")
    assert again["id"] == created["id"]
    v2 = again["latest_document_version"]
    assert v2["version_number"] == 2
    assert v2["uuid"] != pending["uuid"]
    assert again["size"] == len(first)  # the document still shows its last complete version
    assert put(v2, second).status_code == 200
    done2 = ok(confirm(clio, created["id"], v2["uuid"]))["data"]
    assert done2["size"] == len(second)
    assert done2["filename"] == "Engagement letter (signed).pdf"
    assert done2["name"] == "Engagement letter.pdf"  # a new version does not rename the document

    versions = ok(
        clio.get(
            f"/documents/{created['id']}/versions.json",
            params={"fields": "id,document_id,uuid,version_number,size,fully_uploaded,filename,creator{id}"},
        )
    )["data"]
    assert [(v["version_number"], v["size"], v["fully_uploaded"]) for v in versions] == [
        (1, len(first), True),
        (2, len(second), True),
    ]
    assert {v["document_id"] for v in versions} == {created["id"]}
    assert versions[0]["creator"]["id"] == 1

    latest = download(clio, created["id"])
    assert latest.status_code == 200
    assert latest.content == second
    assert latest.headers["content-type"] == "application/pdf"
    assert "Engagement%20letter%20%28signed%29.pdf" in latest.headers["content-disposition"]
    older = download(clio, created["id"], document_version_id=versions[0]["id"])
    assert older.content == first


def test_versions_are_paged_and_filtered(clio: httpx.Client) -> None:
    doc = upload(clio, {"type": "Folder", "id": root_id(clio)}, "memo.txt", b"v1")
    for n in range(2, 5):
        version = create(clio, {"type": "Document", "id": doc["id"]}, "memo.txt")["latest_document_version"]
        if n < 4:  # the fourth stays unfinished
            assert put(version, f"v{n}".encode()).status_code == 200
            ok(confirm(clio, doc["id"], version["uuid"]))
    page = clio.get(f"/documents/{doc['id']}/versions", params={"fields": "id,version_number", "limit": 3})
    first_page = ok(page)
    assert [v["version_number"] for v in first_page["data"]] == [1, 2, 3]
    rest = ok(clio.get(first_page["meta"]["paging"]["next"]))
    assert [v["version_number"] for v in rest["data"]] == [4]
    unfinished = ok(
        clio.get(
            f"/documents/{doc['id']}/versions",
            params={"fields": "version_number,fully_uploaded,put_url", "fully_uploaded": "false"},
        )
    )["data"]
    assert len(unfinished) == 1
    assert unfinished[0]["version_number"] == 4
    assert unfinished[0]["put_url"].startswith("http")
    # the latest *complete* version is what downloads by default
    assert download(clio, doc["id"]).content == b"v3"
    not_yet = clio.get(
        f"/documents/{doc['id']}/download",
        params={"document_version_id": ok(clio.get(f"/documents/{doc['id']}/versions"))["data"][3]["id"]},
    )
    assert not_yet.status_code == 400
    elsewhere = clio.get(f"/documents/{doc['id']}/download", params={"document_version_id": 99999})
    assert elsewhere.status_code == 404


def root_id(clio: httpx.Client) -> int:
    root = ok(clio.get("/folders", params={"parent_id": "null", "fields": "id,root"}))["data"]
    assert len(root) == 1
    assert root[0]["root"] is True
    return int(root[0]["id"])


def test_an_upload_without_every_put_header_or_with_a_bad_url_is_refused(
    sandbox: Sandbox, clio: httpx.Client
) -> None:
    created = create(clio, {"type": "Folder", "id": root_id(clio)}, "contract.docx")
    version = created["latest_document_version"]
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert version["put_headers"][0] == {"name": "Content-Type", "value": docx}

    no_sse = put(version, b"PK..", x_amz_server_side_encryption=None)
    assert no_sse.status_code == 403
    assert no_sse.headers["content-type"].startswith("application/xml")
    assert "<Code>SignatureDoesNotMatch</Code>" in no_sse.text
    assert "x-amz-server-side-encryption" in no_sse.text
    wrong_sse = put(version, b"PK..", x_amz_server_side_encryption="aws:kms")
    assert wrong_sse.status_code == 403
    wrong_type = put(version, b"PK..", Content_Type="application/octet-stream")
    assert wrong_type.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in wrong_type.text

    tampered = {**version, "put_url": version["put_url"].replace("signature=", "signature=0")}
    assert put(tampered, b"PK..").status_code == 403
    with sandbox.admin() as admin:
        ok(admin.post("/clock", json={"advance_seconds": 601}))
    expired = put(version, b"PK..")
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text
    assert "Request has expired" in expired.text

    # none of the refused PUTs stored anything
    refused = confirm(clio, created["id"], version["uuid"])
    assert refused.status_code == 422
    assert refused.json()["error"]["type"] == "UploadNotFoundError"


def test_confirming_without_bytes_twice_or_with_a_foreign_uuid_fails(clio: httpx.Client) -> None:
    created = create(clio, {"type": "Folder", "id": root_id(clio)}, "notes.txt", content_type="text/plain")
    version = created["latest_document_version"]
    early = confirm(clio, created["id"], version["uuid"])
    assert early.status_code == 422
    assert early.json()["error"]["type"] == "UploadNotFoundError"
    missing_uuid = clio.patch(f"/documents/{created['id']}", json={"data": {"fully_uploaded": True}})
    assert missing_uuid.status_code == 422
    foreign = confirm(clio, created["id"], "00000000-0000-0000-0000-000000000000")
    assert foreign.status_code == 422
    assert put(version, b"hello").status_code == 200
    assert ok(confirm(clio, created["id"], version["uuid"]))["data"]["size"] == 5
    twice = confirm(clio, created["id"], version["uuid"])
    assert twice.status_code == 422
    assert "already marked as fully uploaded" in twice.json()["error"]["message"]
    # the URL of a confirmed version no longer takes bytes
    late = put(version, b"overwrite")
    assert late.status_code == 403
    assert download(clio, created["id"]).content == b"hello"


def test_unfinished_uploads_are_hidden_unless_asked_for(clio: httpx.Client) -> None:
    root = root_id(clio)
    complete = upload(clio, {"type": "Folder", "id": root}, "done.txt", b"done")
    pending = create(clio, {"type": "Folder", "id": root}, "pending.txt")
    assert listed_ids(clio) == [complete["id"]]
    assert listed_ids(clio, show_uncompleted="true") == [complete["id"], pending["id"]]
    hidden = clio.get(f"/documents/{pending['id']}")
    assert hidden.status_code == 404
    assert hidden.json()["error"]["type"] == "RecordNotFound"
    shown = ok(
        clio.get(
            f"/documents/{pending['id']}",
            params={"show_uncompleted": "true", "fields": "id,size,latest_document_version{fully_uploaded}"},
        )
    )["data"]
    assert shown == {"id": pending["id"], "size": None, "latest_document_version": {"fully_uploaded": False}}
    items = ok(clio.get("/folders/list", params={"fields": "id,type,name"}))["data"]
    assert {"id": complete["id"], "type": "Document", "name": "done.txt"} in items
    assert pending["id"] not in [i["id"] for i in items]
    with_pending = ok(clio.get("/folders/list", params={"show_uncompleted": "true"}))["data"]
    assert pending["id"] in [i["id"] for i in with_pending]
    assert clio.get(f"/documents/{pending['id']}/download").status_code == 404
    assert clio.get("/documents", params={"show_uncompleted": "maybe"}).status_code == 400


def test_delete_moves_to_the_trash_and_restore_brings_it_back(clio: httpx.Client) -> None:
    doc = upload(clio, {"type": "Folder", "id": root_id(clio)}, "draft.txt", b"draft")
    assert clio.delete(f"/documents/{doc['id']}.json").status_code == 204
    assert listed_ids(clio) == []
    trashed = ok(clio.get("/documents", params={"include_deleted": "true", "fields": "id,deleted_at"}))[
        "data"
    ]
    assert [d["id"] for d in trashed] == [doc["id"]]
    assert trashed[0]["deleted_at"] is not None
    shown = ok(clio.get(f"/documents/{doc['id']}", params={"fields": "deleted_at"}))["data"]
    assert shown["deleted_at"] == trashed[0]["deleted_at"]
    assert clio.delete(f"/documents/{doc['id']}").status_code == 204  # already trashed: no change
    conflict = clio.patch(f"/documents/{doc['id']}", json={"data": {"name": "renamed.txt"}})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["type"] == "ConflictError"
    back = ok(
        clio.patch(
            f"/documents/{doc['id']}",
            params={"fields": "id,name,deleted_at"},
            json={"data": {"restore": True, "name": "final.txt"}},
        )
    )["data"]
    assert back == {"id": doc["id"], "name": "final.txt", "deleted_at": None}
    assert listed_ids(clio) == [doc["id"]]
    assert download(clio, doc["id"]).content == b"draft"


def test_rename_move_and_the_matter_and_contact_links(clio: httpx.Client) -> None:
    contact_id, matter_id = make_matter(clio)
    doc = upload(clio, {"type": "Matter", "id": matter_id}, "Witness statement.pdf", b"statement")
    moved = ok(
        clio.patch(
            f"/documents/{doc['id']}",
            params={"fields": SHOW_FIELDS},
            json={"data": {"parent": {"type": "Contact", "id": contact_id}, "name": "Statement of A. Smith"}},
        )
    )["data"]
    contact_folder = ok(clio.get(f"/contacts/{contact_id}", params={"fields": "folder{id}"}))["data"][
        "folder"
    ]
    assert moved["parent"] == contact_folder
    assert moved["contact"] == {"id": contact_id}
    assert moved["matter"] is None
    assert moved["name"] == "Statement of A. Smith"
    assert moved["filename"] == "Witness statement.pdf"
    assert listed_ids(clio, contact_id=contact_id) == [doc["id"]]
    assert listed_ids(clio, matter_id=matter_id) == []
    assert listed_ids(clio, query="smith") == [doc["id"]]
    assert listed_ids(clio, query="nothing like it") == []
    into_document = clio.patch(
        f"/documents/{doc['id']}", json={"data": {"parent": {"type": "Document", "id": doc["id"]}}}
    )
    assert into_document.status_code == 422
    stale = clio.patch(
        f"/documents/{doc['id']}", headers={"If-Match": doc["etag"]}, json={"data": {"name": "x"}}
    )
    assert stale.status_code == 412


def test_rename_with_copy_version_when_the_extension_changes(clio: httpx.Client) -> None:
    doc = upload(clio, {"type": "Folder", "id": root_id(clio)}, "scan.jpeg", b"\xff\xd8\xff")
    renamed = ok(
        clio.patch(
            f"/documents/{doc['id']}",
            params={"fields": "name,filename,content_type,latest_document_version{version_number}"},
            json={"data": {"name": "scan.jpg", "copy_version": True}},
        )
    )["data"]
    assert renamed == {
        "name": "scan.jpg",
        "filename": "scan.jpg",
        "content_type": "image/jpeg",
        "latest_document_version": {"version_number": 2},
    }
    assert download(clio, doc["id"]).content == b"\xff\xd8\xff"
    same_ext = ok(
        clio.patch(
            f"/documents/{doc['id']}",
            params={"fields": "latest_document_version{version_number}"},
            json={"data": {"name": "scan (2).jpg", "copy_version": True}},
        )
    )["data"]
    assert same_ext["latest_document_version"]["version_number"] == 2


def test_create_validation_writes_nothing(sandbox: Sandbox, clio: httpx.Client) -> None:
    root = root_id(clio)
    bad_fields = clio.post(
        "/documents",
        params={"fields": "id,latest_document_version{colour}"},
        json={"data": {"name": "a.txt", "parent": {"type": "Folder", "id": root}}},
    )
    assert bad_fields.status_code == 400
    for data, message in (
        ({"parent": {"type": "Folder", "id": root}}, "Name can't be blank"),
        ({"name": "a.txt"}, "parent can't be blank"),
        ({"name": "a.txt", "parent": {"type": "Bucket", "id": root}}, "parent.type must be one of"),
        ({"name": "a.txt", "parent": {"type": "Matter", "id": 4242}}, "Matter with id 4242 does not exist"),
        (
            {"name": "a.txt", "parent": {"type": "Folder", "id": root}, "content_type": "pdf"},
            "content_type must be a MIME type",
        ),
        (
            {
                "name": "a.txt",
                "parent": {"type": "Folder", "id": root},
                "external_properties": [{"name": "k"}] * 6,
            },
            "external_properties[0].value can't be blank",
        ),
    ):
        refused = clio.post("/documents", json={"data": data})
        assert refused.status_code == 422, data
        assert message in refused.json()["error"]["message"]
    with sandbox.admin() as admin:
        counts = ok(admin.get("/state"))["counts"]
    assert "documents" not in counts
    assert "document_versions" not in counts


def test_explicit_content_type_filename_and_external_properties(clio: httpx.Client) -> None:
    doc = upload(
        clio,
        {"type": "Folder", "id": root_id(clio)},
        "Bundle",
        b"<html></html>",
        filename="bundle.html",
        content_type="text/html",
        received_at="2026-01-02T03:04:05+00:00",
        external_properties=[{"name": "source", "value": "casebridge"}],
    )
    shown = ok(
        clio.get(
            f"/documents/{doc['id']}",
            params={"fields": "name,filename,content_type,received_at,external_properties{name,value}"},
        )
    )["data"]
    assert shown == {
        "name": "Bundle",
        "filename": "bundle.html",
        "content_type": "text/html",
        "received_at": "2026-01-02T03:04:05+00:00",
        "external_properties": [{"name": "source", "value": "casebridge"}],
    }
    assert listed_ids(clio, external_property_name="source", external_property_value="casebridge") == [
        doc["id"]
    ]
    assert listed_ids(clio, external_property_name="source", external_property_value="other") == []
    fetched = download(clio, doc["id"])
    assert fetched.headers["content-type"].startswith("text/html")
    too_many = clio.patch(
        f"/documents/{doc['id']}",
        json={"data": {"external_properties": [{"name": f"k{i}", "value": "v"} for i in range(5)]}},
    )
    assert too_many.status_code == 422
    assert "at most 5" in too_many.json()["error"]["message"]

"""Folders: the root, folders made for new matters and contacts, a folder's contents, the trash with
its contents, and the rules for moving and trashing."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox.conftest import Sandbox, ok
from tests.sandbox.test_documents import create, make_matter, root_id, upload

FOLDER_FIELDS = "id,etag,name,root,deleted_at,parent{id},matter{id},contact{id}"


def folder(clio: httpx.Client, name: str, parent: dict[str, Any]) -> dict[str, Any]:
    made: dict[str, Any] = ok(
        clio.post(
            "/folders.json", params={"fields": FOLDER_FIELDS}, json={"data": {"name": name, "parent": parent}}
        ),
        201,
    )["data"]
    return made


def contents(clio: httpx.Client, **params: Any) -> list[tuple[str, int]]:
    items = ok(clio.get("/folders/list.json", params={"fields": "id,type", **params}))["data"]
    return [(i["type"], i["id"]) for i in items]


def test_new_matters_and_contacts_get_their_own_folder(sandbox: Sandbox, clio: httpx.Client) -> None:
    contact = ok(
        clio.post(
            "/contacts",
            params={"fields": "id,etag,folder{id,name}"},
            json={"data": {"type": "Person", "first_name": "Ann", "last_name": "Smith"}},
        ),
        201,
    )["data"]
    assert contact["folder"]["name"] == "Ann Smith"
    # linking the folder does not count as a change of the contact
    assert (
        ok(clio.get(f"/contacts/{contact['id']}", params={"fields": "etag"}))["data"]["etag"]
        == contact["etag"]
    )
    matter = ok(
        clio.post(
            "/matters",
            params={"fields": "id,display_number,folder{id,name}"},
            json={"data": {"description": "Smith divorce", "client": {"id": contact["id"]}}},
        ),
        201,
    )["data"]
    assert matter["folder"]["name"] == matter["display_number"] == "00001-Smith"

    root = root_id(clio)
    contact_folder = ok(clio.get(f"/folders/{contact['folder']['id']}", params={"fields": FOLDER_FIELDS}))[
        "data"
    ]
    assert contact_folder["parent"] == {"id": root}
    assert contact_folder["contact"] == {"id": contact["id"]}
    assert contact_folder["matter"] is None
    assert contact_folder["root"] is False
    matter_folder = ok(clio.get(f"/folders/{matter['folder']['id']}", params={"fields": FOLDER_FIELDS}))[
        "data"
    ]
    assert matter_folder["matter"] == {"id": matter["id"]}
    # the root folder's contents (the default of /folders/list)
    assert contents(clio) == [("Folder", contact_folder["id"]), ("Folder", matter_folder["id"])]
    assert contents(clio, parent_id=root) == contents(clio)
    # folders are found by matter and contact
    by_matter = ok(clio.get("/folders", params={"matter_id": matter["id"]}))["data"]
    assert [f["id"] for f in by_matter] == [matter_folder["id"]]
    by_contact = ok(clio.get("/folders", params={"contact_id": contact["id"]}))["data"]
    assert [f["id"] for f in by_contact] == [contact_folder["id"]]
    # a document given the matter as its parent lands in the matter's folder
    doc = upload(clio, {"type": "Matter", "id": matter["id"]}, "Petition.pdf", b"petition")
    assert contents(clio, parent_id=matter_folder["id"]) == [("Document", doc["id"])]


def test_a_seeded_contact_gets_its_folder_when_first_used(sandbox: Sandbox, clio: httpx.Client) -> None:
    with sandbox.admin() as admin:
        ok(admin.post("/seed", json={"contacts": [{"id": 7, "type": "Company", "name": "Seeded Co"}]}))
    assert ok(clio.get("/contacts/7", params={"fields": "folder"}))["data"]["folder"] is None
    made = folder(clio, "Correspondence", {"type": "Contact", "id": 7})
    contact_folder = ok(clio.get("/contacts/7", params={"fields": "folder{id,name}"}))["data"]["folder"]
    assert contact_folder["name"] == "Seeded Co"
    assert made["parent"] == {"id": contact_folder["id"]}
    assert made["contact"] == {"id": 7}


def test_contents_children_and_descendants(clio: httpx.Client) -> None:
    _, matter_id = make_matter(clio)
    pleadings = folder(clio, "Pleadings", {"type": "Matter", "id": matter_id})
    drafts = folder(clio, "Drafts", {"type": "Folder", "id": pleadings["id"]})
    assert drafts["matter"] == {"id": matter_id}  # through the parent chain
    top = upload(clio, {"type": "Folder", "id": pleadings["id"]}, "Claim.pdf", b"claim")
    deep = upload(clio, {"type": "Folder", "id": drafts["id"]}, "Claim draft.pdf", b"draft")
    assert contents(clio, parent_id=pleadings["id"]) == [("Folder", drafts["id"]), ("Document", top["id"])]
    assert contents(clio, parent_id=pleadings["id"], scope="descendants") == [
        ("Folder", drafts["id"]),
        ("Document", top["id"]),
        ("Document", deep["id"]),
    ]
    docs = ok(clio.get("/documents", params={"parent_id": pleadings["id"], "scope": "descendants"}))["data"]
    assert [d["id"] for d in docs] == [top["id"], deep["id"]]
    children = ok(clio.get("/documents", params={"parent_id": pleadings["id"]}))["data"]
    assert [d["id"] for d in children] == [top["id"]]
    in_matter = ok(clio.get("/documents", params={"matter_id": matter_id}))["data"]
    assert [d["id"] for d in in_matter] == [top["id"], deep["id"]]
    named = ok(
        clio.get("/folders/list", params={"parent_id": pleadings["id"], "query": "draft", "fields": "name"})
    )
    assert named["data"] == [{"name": "Drafts"}]
    paged = ok(
        clio.get("/folders/list", params={"parent_id": pleadings["id"], "scope": "descendants", "limit": 2})
    )
    assert len(paged["data"]) == 2
    rest = ok(clio.get(paged["meta"]["paging"]["next"]))
    assert [i["id"] for i in rest["data"]] == [deep["id"]]
    assert clio.get("/folders/list", params={"parent_id": "null"}).status_code == 400
    assert clio.get("/folders/list", params={"scope": "everything"}).status_code == 400
    assert clio.get("/folders/list", params={"parent_id": 99999}).status_code == 404


def test_trashing_a_folder_takes_its_contents_and_restore_brings_them_back(clio: httpx.Client) -> None:
    root = root_id(clio)
    archive = folder(clio, "Archive", {"type": "Folder", "id": root})
    inner = folder(clio, "2019", {"type": "Folder", "id": archive["id"]})
    doc = upload(clio, {"type": "Folder", "id": inner["id"]}, "old.txt", b"old")
    loose = upload(clio, {"type": "Folder", "id": archive["id"]}, "loose.txt", b"loose")
    assert clio.delete(f"/documents/{loose['id']}").status_code == 204  # trashed on its own first

    assert clio.delete(f"/folders/{archive['id']}.json").status_code == 204
    assert contents(clio) == []
    assert ok(clio.get("/documents"))["data"] == []
    everything = contents(clio, include_deleted="true", scope="descendants")
    assert set(everything) == {
        ("Folder", archive["id"]),
        ("Folder", inner["id"]),
        ("Document", doc["id"]),
        ("Document", loose["id"]),
    }
    shown = ok(clio.get(f"/folders/{archive['id']}", params={"fields": "deleted_at"}))["data"]
    assert shown["deleted_at"] is not None
    renamed = clio.patch(f"/folders/{archive['id']}", json={"data": {"name": "Old archive"}})
    assert renamed.status_code == 409
    early = clio.patch(f"/documents/{doc['id']}", json={"data": {"restore": True}})
    assert early.status_code == 409  # its folder is still in the trash
    assert "restore it first" in early.json()["error"]["message"]
    no_new_docs = clio.post(
        "/documents", json={"data": {"name": "n.txt", "parent": {"type": "Folder", "id": inner["id"]}}}
    )
    assert no_new_docs.status_code == 422

    back = ok(
        clio.patch(
            f"/folders/{archive['id']}", params={"fields": FOLDER_FIELDS}, json={"data": {"restore": True}}
        )
    )["data"]
    assert back["deleted_at"] is None
    assert contents(clio) == [("Folder", archive["id"])]
    assert contents(clio, parent_id=inner["id"]) == [("Document", doc["id"])]
    # what was trashed on its own before the folder stays in the trash
    assert contents(clio, parent_id=archive["id"]) == [("Folder", inner["id"])]
    assert ok(clio.get(f"/documents/{loose['id']}", params={"fields": "deleted_at"}))["data"]["deleted_at"]


def test_the_root_and_matter_folders_cannot_be_trashed(clio: httpx.Client) -> None:
    root = root_id(clio)
    refused = clio.delete(f"/folders/{root}")
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "type": "DeleteFailed",
        "message": "Delete failed: The root folder cannot be trashed",
    }
    _, matter_id = make_matter(clio)
    matter_folder = ok(clio.get(f"/matters/{matter_id}", params={"fields": "folder"}))["data"]["folder"]
    assert clio.delete(f"/folders/{matter_folder['id']}").json()["error"]["type"] == "DeleteFailed"
    assert clio.delete("/folders/99999").status_code == 404
    listed = ok(clio.get("/folders", params={"fields": "id,root"}))["data"]
    assert {"id": root, "root": True} in listed


def test_rename_move_and_their_rules(clio: httpx.Client) -> None:
    root = root_id(clio)
    a = folder(clio, "A", {"type": "Folder", "id": root})
    b = folder(clio, "B", {"type": "Folder", "id": a["id"]})
    c = folder(clio, "C", {"type": "Folder", "id": root})
    into_own_child = clio.patch(
        f"/folders/{a['id']}", json={"data": {"parent": {"type": "Folder", "id": b["id"]}}}
    )
    assert into_own_child.status_code == 422
    assert (
        clio.patch(
            f"/folders/{root}", json={"data": {"parent": {"type": "Folder", "id": c["id"]}}}
        ).status_code
        == 422
    )
    moved = ok(
        clio.patch(
            f"/folders/{b['id']}",
            params={"fields": FOLDER_FIELDS},
            json={"data": {"name": "B2", "parent": {"type": "Folder", "id": c["id"]}}},
        )
    )["data"]
    assert moved["name"] == "B2"
    assert moved["parent"] == {"id": c["id"]}
    assert moved["etag"] != b["etag"]
    assert contents(clio, parent_id=c["id"]) == [("Folder", b["id"])]
    stale = clio.patch(f"/folders/{b['id']}", headers={"If-Match": b["etag"]}, json={"data": {"name": "B3"}})
    assert stale.status_code == 412
    unchanged = clio.get(f"/folders/{b['id']}", headers={"If-None-Match": moved["etag"]})
    assert unchanged.status_code == 304
    assert clio.post("/folders", json={"data": {"name": "X"}}).status_code == 422
    nowhere = clio.post("/folders", json={"data": {"name": "X", "parent": {"type": "Document", "id": root}}})
    assert nowhere.status_code == 422
    assert clio.post("/folders", params={"fields": "id,shoe_size"}, json={"data": {}}).status_code == 400


def test_documents_of_a_pending_upload_show_in_a_folder_only_when_asked(clio: httpx.Client) -> None:
    box = folder(clio, "Inbox", {"type": "Folder", "id": root_id(clio)})
    pending = create(clio, {"type": "Folder", "id": box["id"]}, "incoming.pdf")
    assert contents(clio, parent_id=box["id"]) == []
    assert contents(clio, parent_id=box["id"], show_uncompleted="true") == [("Document", pending["id"])]
    item = ok(
        clio.get(
            "/folders/list",
            params={
                "parent_id": box["id"],
                "show_uncompleted": "true",
                "fields": "id,type,name,parent{id},latest_document_version{uuid,fully_uploaded}",
            },
        )
    )["data"][0]
    assert item["latest_document_version"] == {
        "uuid": pending["latest_document_version"]["uuid"],
        "fully_uploaded": False,
    }
    assert item["parent"] == {"id": box["id"]}

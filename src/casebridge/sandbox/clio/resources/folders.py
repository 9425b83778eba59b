"""Folders, and what folders and documents share: the account's root folder, the folders made for every
new matter and contact, the trash, external properties, and ``/folders/list`` (a folder's contents).

Folders and documents are Clio's "Items" (``type`` ``Folder`` or ``Document``) and take their ids from
one sequence (``items``), so ``/folders/list`` can page both by id. There is one root folder per
account (``root: true``, parent ``null``), made when first needed. A new matter or contact gets its
own folder under the root (named after its ``display_number``, or the contact's name), linked as the
record's ``folder``; a ``Contact`` or ``Matter`` parent on a create or move means that folder (made
then if the record has none, e.g. a seeded one).

A folder's or document's ``matter`` and ``contact`` come from the nearest matter or contact folder up
its parent chain. ``DELETE`` moves an item to the trash (``deleted_at``); a folder takes its contents
with it, and ``PATCH {"restore": true}`` brings back the folder and what went with it. Trashed items
are left out of lists unless ``include_deleted=true`` but still show by id (with ``deleted_at``); any
other change to a trashed item, or restoring one whose parent folder is still in the trash, is
``409 ConflictError``. The root, matter and contact folders cannot be trashed (``400 DeleteFailed``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio.app import Ctx, ctx_of
from casebridge.sandbox.clio.errors import ClioError, bad_request, invalid, not_found
from casebridge.sandbox.clio.resource import Link, Resource
from casebridge.sandbox.clio.resources.common import (
    boolean,
    check_if_match,
    no_content,
    reference,
    show,
    text,
)
from casebridge.sandbox.clio.state import Record, SandboxState, iso

ITEM_SEQUENCE = "items"  # folders and documents share one id space
ROOT_NAME = "Root"
FOLDER_PARENTS = ("Folder", "Contact", "Matter")
MAX_EXTERNAL_PROPERTIES = 5
TRUE_FALSE = {"true": True, "1": True, "false": False, "0": False}


# --- shared helpers -------------------------------------------------------------------------------


def flag(params: dict[str, str], name: str) -> bool:
    """A boolean query parameter as the ``hidden`` predicates read it (already validated)."""
    return TRUE_FALSE.get(str(params.get(name, "")).lower(), False)


def check_flags(ctx: Ctx, *names: str) -> None:
    """400 for a boolean query parameter that is neither true nor false."""
    for name in names:
        raw = ctx.request.query_params.get(name)
        if raw is not None and raw.lower() not in TRUE_FALSE:
            raise bad_request(f"{name} must be true or false, got {raw!r}")


def trashed(record: Record) -> bool:
    return bool(record.get("deleted_at"))


def root_folder(state: SandboxState) -> Record:
    """The account's one root folder, made when first needed."""
    with state.lock:
        for folder in state.all("folders"):
            if folder.get("root"):
                return folder
        folder = new_folder(state, ROOT_NAME, None, int(state.settings.get("sandbox_user_id", 1)), root=True)
        state.put("folders", state.stamp(folder, created=True))
        return folder


def new_folder(
    state: SandboxState, name: str, parent_id: int | None, creator_id: int | None, *, root: bool = False
) -> Record:
    return {
        "id": state.next_id(ITEM_SEQUENCE),
        "type": "Folder",
        "name": name,
        "root": root,
        "locked": False,
        "parent_id": parent_id,
        "matter_id": None,  # set on a matter's own folder only; descendants find it up the chain
        "contact_id": None,
        "document_category_id": None,
        "external_properties": [],
        "creator_id": creator_id,
        "deleted_at": None,
        "_trashed_with": None,
    }


def owner_folder(state: SandboxState, kind: str, owner: Record, creator_id: int | None = None) -> Record:
    """The folder of a matter or contact (``kind``), made under the root if it has none yet."""
    with state.lock:
        existing = state.get("folders", owner.get("folder_id") or 0)
        if existing is not None:
            return existing
        if kind == "matters":
            name = str(owner.get("display_number") or owner.get("description") or f"Matter {owner['id']}")
        else:
            name = str(owner.get("name") or f"Contact {owner['id']}")
        creator = creator_id or owner.get("user_id") or int(state.settings.get("sandbox_user_id", 1))
        folder = new_folder(state, name, root_folder(state)["id"], creator)
        folder["matter_id" if kind == "matters" else "contact_id"] = owner["id"]
        state.put("folders", state.stamp(folder, created=True))
        owner["folder_id"] = folder["id"]
        state.put(kind, owner)  # the link only: the owner's etag and updated_at stay as they were
        state.changed("folders", "created", folder)
        return folder


def install(state: SandboxState) -> None:
    """Every new matter and contact gets its folder (before webhooks see the ``created`` event)."""

    def on_change(kind: str, event: str, record: Record, _: Record | None) -> None:
        if event == "created" and kind in ("matters", "contacts"):
            owner_folder(state, kind, record)

    state.listeners.append(on_change)


def chain(state: SandboxState, record: Record) -> list[Record]:
    """The folder holding ``record`` (or ``record`` itself, for a folder) and its ancestors, upwards."""
    out: list[Record] = []
    folder = record if record.get("type") == "Folder" else state.get("folders", record.get("parent_id") or 0)
    seen: set[int] = set()
    while folder is not None and folder["id"] not in seen:
        out.append(folder)
        seen.add(folder["id"])
        folder = state.get("folders", folder.get("parent_id") or 0)
    return out


def owner_id(state: SandboxState, record: Record, key: str) -> int | None:
    """``matter_id`` or ``contact_id`` of the nearest matter or contact folder up the chain."""
    for folder in chain(state, record):
        if folder.get(key) is not None:
            return int(folder[key])
    return None


def _owner(kind: str, key: str) -> Callable[[SandboxState, Record], Any]:
    def get(state: SandboxState, record: Record) -> Any:
        ident = owner_id(state, record, key)
        return state.get(kind, ident) if ident is not None else None

    return get


def creator(state: SandboxState, record: Record) -> Record | None:
    user = state.get("users", record.get("creator_id") or 0)
    return {**user, "type": "ManageUser"} if user is not None else None


def latest_version(state: SandboxState, record: Record) -> Record | None:
    """A document's newest version (the one a new upload goes to); ``None`` for folders."""
    version = state.get("document_versions", record.get("_latest_version_id") or 0)
    if version is None:
        return None
    return {**version, "creator": creator(state, version)}


def in_subtree(state: SandboxState, folder_id: int) -> set[int]:
    """The ids of ``folder_id`` and every folder below it."""
    by_parent: dict[int, list[int]] = {}
    for folder in state.all("folders"):
        if folder.get("parent_id") is not None:
            by_parent.setdefault(folder["parent_id"], []).append(folder["id"])
    out = {folder_id}
    todo = [folder_id]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def below(state: SandboxState, folder_id: int) -> list[tuple[str, Record]]:
    """Every folder and document below ``folder_id`` (not the folder itself)."""
    folders = in_subtree(state, folder_id)
    out: list[tuple[str, Record]] = [
        ("folders", f) for f in state.all("folders") if f["id"] != folder_id and f["id"] in folders
    ]
    out += [("documents", d) for d in state.all("documents") if d.get("parent_id") in folders]
    return out


def parent_folder(
    ctx: Ctx, data: dict[str, Any], allowed: tuple[str, ...], *, required: bool
) -> Record | None:
    """``parent: {id, type}`` naming a Folder, a Contact or a Matter (its folder), or (where ``allowed``
    has it) a Document; returns the folder, or the document for a ``Document`` parent."""
    value = data.get("parent")
    if value is None:
        if required:
            raise invalid("parent can't be blank")
        return None
    if not isinstance(value, dict):
        raise invalid('parent must be an object like {"id": 1, "type": "Folder"}')
    kind = value.get("type")
    if kind not in allowed:
        raise invalid(f"parent.type must be one of {', '.join(allowed)}; got {kind!r}")
    ident = value.get("id")
    if isinstance(ident, bool) or not isinstance(ident, int):
        raise invalid("parent.id must be an integer")
    if kind == "Document":
        document = ctx.state.get("documents", ident)
        if document is None:
            raise invalid(f"parent: Document with id {ident} does not exist")
        return document
    if kind == "Folder":
        folder = ctx.state.get("folders", ident)
        if folder is None:
            raise invalid(f"parent: Folder with id {ident} does not exist")
    else:
        table = "contacts" if kind == "Contact" else "matters"
        owner = ctx.state.get(table, ident)
        if owner is None:
            raise invalid(f"parent: {kind} with id {ident} does not exist")
        folder = owner_folder(ctx.state, table, owner, ctx.user_id)
    if trashed(folder):
        raise invalid(f"parent: Folder {folder['id']} is in the trash")
    return folder


def external_properties(ctx: Ctx, record: Record, given: Any) -> None:
    """``external_properties[{name, value}]``; on update ``{id, ...}`` changes one and ``{id, _destroy:
    true}`` removes it. At most five."""
    if given is None:
        return
    if not isinstance(given, list):
        raise invalid("external_properties must be an array")
    items: list[Record] = [dict(i) for i in record.get("external_properties") or []]
    now = iso(ctx.state.clock.now())
    for n, raw in enumerate(given):
        where = f"external_properties[{n}]"
        if not isinstance(raw, dict):
            raise invalid(f"{where} must be an object")
        if raw.get("id") is not None:
            item = next((i for i in items if i["id"] == raw["id"]), None)
            if item is None:
                raise invalid(f"{where}: external property {raw['id']} does not belong to this record")
            if raw.get("_destroy"):
                items.remove(item)
                continue
        else:
            item = {"id": ctx.state.next_id("external_properties"), "created_at": now}
            items.append(item)
        for key in ("name", "value"):
            if key in raw or "id" not in raw:
                item[key] = text(raw, key, required=True, label=f"{where}.{key}")
        item["updated_at"] = now
        item["etag"] = f'"external_properties-{item["id"]}-{now}"'
    if len(items) > MAX_EXTERNAL_PROPERTIES:
        raise invalid(f"A record may have at most {MAX_EXTERNAL_PROPERTIES} external properties")
    record["external_properties"] = items


def common_filters(ctx: Ctx, rows: list[Record]) -> list[Record]:
    """``matter_id``, ``contact_id`` (``null`` for none), ``document_category_id`` and external
    property filters, shared by documents, folders and folder contents."""
    q = ctx.request.query_params
    for param, key in (("matter_id", "matter_id"), ("contact_id", "contact_id")):
        if q.get(param):
            wanted = id_or_null(param, q[param])
            rows = [r for r in rows if owner_id(ctx.state, r, key) == wanted]
    if q.get("document_category_id"):
        wanted = id_or_null("document_category_id", q["document_category_id"])
        rows = [r for r in rows if r.get("document_category_id") == wanted]
    name = q.get("external_property_name")
    value = q.get("external_property_value")
    if value is not None and not name:
        raise bad_request("external_property_value requires external_property_name")
    if name:
        rows = [
            r
            for r in rows
            if any(
                p.get("name") == name and (value is None or p.get("value") == value)
                for p in r.get("external_properties") or []
            )
        ]
    return rows


def id_or_null(name: str, raw: str) -> int | None:
    if raw == "null":
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer or null, got {raw!r}") from None


def trash(ctx: Ctx, kind: str, current: Record) -> None:
    """Move an item (and, for a folder, everything below it) to the trash."""
    now = iso(ctx.state.clock.now())
    affected = [(kind, current)] + (below(ctx.state, current["id"]) if kind == "folders" else [])
    for table, item in affected:
        if trashed(item):
            continue  # already in the trash on its own: a restore of this folder leaves it there
        record = {**item, "deleted_at": now, "_trashed_with": current["id"]}
        ctx.state.put(table, ctx.state.stamp(record))
        ctx.state.changed(table, "deleted", record, item)


def check_restorable(ctx: Ctx, current: Record) -> None:
    """409 while the item's parent folder is in the trash."""
    parent = ctx.state.get("folders", current.get("parent_id") or 0)
    if parent is not None and trashed(parent):
        raise ClioError(
            409,
            "ConflictError",
            f"The parent folder {parent['id']} is in the trash; restore it first",
        )


def restore(ctx: Ctx, kind: str, current: Record) -> Record:
    """Bring an item out of the trash with what went there with it (after :func:`check_restorable`)."""
    affected = [(kind, current)] + (below(ctx.state, current["id"]) if kind == "folders" else [])
    restored = current
    for table, item in affected:
        if item is not current and item.get("_trashed_with") != current["id"]:
            continue
        record = {**item, "deleted_at": None, "_trashed_with": None}
        ctx.state.put(table, ctx.state.stamp(record))
        ctx.state.changed(table, "updated", record, item)
        if item is current:
            restored = record
    return restored


def restoring_and_others(ctx: Ctx, current: Record, data: dict[str, Any], label: str) -> tuple[bool, bool]:
    """Whether a PATCH restores the item, and whether it changes anything else; 409 for a change to a
    trashed item that is not being restored, or a restore while the parent folder is trashed."""
    restoring = bool(boolean(data, "restore")) and trashed(current)
    others = any(k != "restore" for k in data)
    if restoring:
        check_restorable(ctx, current)
    elif others:
        refuse_if_trashed(current, label)
    return restoring, others


def restored(ctx: Ctx, kind: str, current: Record, record: Record) -> Record:
    """Restore ``current`` (stored, with its event) and carry that onto ``record``, the pending change."""
    after = restore(ctx, kind, current)
    record.update(deleted_at=None, _trashed_with=None, _version=after["_version"])
    return after


def refuse_if_trashed(record: Record, label: str) -> None:
    if trashed(record):
        raise ClioError(
            409,
            "ConflictError",
            f'The {label} {record["id"]} is in the trash; restore it (PATCH {{"restore": true}}) first',
        )


def hidden_item(record: Record, params: dict[str, str]) -> bool:
    if trashed(record) and not flag(params, "include_deleted"):
        return True
    return (
        record.get("type") == "Document"
        and not record.get("_uploaded")
        and not flag(params, "show_uncompleted")
    )


NESTED: dict[str, Link | str | Callable[[SandboxState, Record], Any]] = {
    "parent": Link("folders", "parent_id"),
    "matter": _owner("matters", "matter_id"),
    "contact": _owner("contacts", "contact_id"),
    "creator": creator,
    "document_category": Link("document_categories", "document_category_id"),
    "external_properties": "external_properties",
    "latest_document_version": latest_version,
}

FOLDERS = Resource(
    "folders",
    "Folder",
    "Folder",
    nested={**NESTED, "latest_document_version": lambda _s, _r: None},
    search=("name",),
    orders=("id", "name"),
    hidden=hidden_item,
)

# /folders/list: folders and documents together
ITEMS = Resource(
    "items",
    "Item",
    "Item",
    nested=NESTED,
    search=("name",),
    orders=("id", "name", "created_at", "updated_at", "received_at", "document_number"),
    hidden=hidden_item,
)


def scoped(ctx: Ctx, rows: list[Record], parent_id: int | None) -> list[Record]:
    """Rows directly in ``parent_id`` (``scope=children``, the default) or anywhere below it
    (``scope=descendants``)."""
    scope = ctx.request.query_params.get("scope") or "children"
    if scope not in ("children", "descendants"):
        raise bad_request(f"scope must be children or descendants, got {scope!r}")
    if parent_id is None:
        return [r for r in rows if r.get("parent_id") is None]
    if scope == "children":
        return [r for r in rows if r.get("parent_id") == parent_id]
    inside = in_subtree(ctx.state, parent_id)
    return [r for r in rows if r.get("parent_id") in inside]


# --- routes -------------------------------------------------------------------------------------

router = APIRouter()


def _find(ctx: Ctx, folder_id: int) -> Record:
    root_folder(ctx.state)
    folder = ctx.state.get("folders", folder_id)
    if folder is None:
        raise not_found("Folder", folder_id)
    return folder


@router.get("/folders")
def list_folders(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    check_flags(ctx, "include_deleted")
    root_folder(ctx.state)
    q = request.query_params
    rows = common_filters(ctx, ctx.state.all("folders"))
    if q.get("parent_id"):
        rows = scoped(ctx, rows, id_or_null("parent_id", q["parent_id"]))
    return JSONResponse(FOLDERS.list(ctx, rows))


@router.get("/folders/list")
def folder_contents(request: Request) -> JSONResponse:
    """A folder's folders and documents together (default: the root folder)."""
    ctx = ctx_of(request)
    check_flags(ctx, "include_deleted", "show_uncompleted")
    q = request.query_params
    if q.get("parent_id") == "null":
        raise bad_request("parent_id cannot be null when listing a folder's contents")
    parent = _find(ctx, id_or_null("parent_id", q["parent_id"]) or 0) if q.get("parent_id") else None
    parent = parent or root_folder(ctx.state)
    rows = scoped(ctx, ctx.state.all("folders") + ctx.state.all("documents"), parent["id"])
    return JSONResponse(ITEMS.list(ctx, common_filters(ctx, rows)))


@router.post("/folders")
async def create_folder(request: Request) -> Response:
    ctx = ctx_of(request)
    FOLDERS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    name = text(data, "name", required=True, label="Name")
    assert name is not None
    with ctx.state.lock:
        parent = parent_folder(ctx, data, FOLDER_PARENTS, required=True)
        assert parent is not None
        record = new_folder(ctx.state, name, parent["id"], ctx.user_id)
        record["document_category_id"] = reference(
            ctx, data, "document_category", "document_categories", "Document category"
        )
        external_properties(ctx, record, data.get("external_properties"))
        ctx.state.put("folders", ctx.state.stamp(record, created=True))
        ctx.state.changed("folders", "created", record)
    return show(ctx, FOLDERS, record, status=201)


@router.get("/folders/{folder_id}")
def show_folder(request: Request, folder_id: int) -> Response:
    ctx = ctx_of(request)
    return show(ctx, FOLDERS, _find(ctx, folder_id))


@router.patch("/folders/{folder_id}")
async def update_folder(request: Request, folder_id: int) -> Response:
    ctx = ctx_of(request)
    FOLDERS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        current = _find(ctx, folder_id)
        check_if_match(ctx, current)
        restoring, others = restoring_and_others(ctx, current, data, "Folder")
        record = dict(current)
        if "name" in data:
            record["name"] = text(data, "name", required=True, label="Name")
        if "parent" in data:
            parent = parent_folder(ctx, data, FOLDER_PARENTS, required=True)
            assert parent is not None
            if current.get("root") or current.get("matter_id") or current.get("contact_id"):
                raise invalid("The root folder and matter and contact folders cannot be moved")
            if parent["id"] in in_subtree(ctx.state, current["id"]):
                raise invalid("A folder cannot be moved into itself or one of its subfolders")
            record["parent_id"] = parent["id"]
        if "document_category" in data:
            record["document_category_id"] = reference(
                ctx, data, "document_category", "document_categories", "Document category"
            )
        external_properties(ctx, record, data.get("external_properties"))
        if restoring:
            current = restored(ctx, "folders", current, record)
        if not others:
            return show(ctx, FOLDERS, current)
        ctx.state.put("folders", ctx.state.stamp(record))
        ctx.state.changed("folders", "updated", record, current)
    return show(ctx, FOLDERS, record)


@router.delete("/folders/{folder_id}")
def delete_folder(request: Request, folder_id: int) -> Response:
    ctx = ctx_of(request)
    with ctx.state.lock:
        current = _find(ctx, folder_id)
        if current.get("root"):
            raise ClioError(400, "DeleteFailed", "Delete failed: The root folder cannot be trashed")
        if current.get("matter_id") is not None or current.get("contact_id") is not None:
            raise ClioError(
                400, "DeleteFailed", "Delete failed: A matter's or contact's own folder cannot be trashed"
            )
        if any(item.get("locked") for _, item in below(ctx.state, folder_id)):
            raise ClioError(
                400, "DeleteFailed", "Delete failed: This item contains locked items and cannot be deleted."
            )
        if not trashed(current):  # trashing a trashed folder changes nothing
            trash(ctx, "folders", current)
    return no_content()

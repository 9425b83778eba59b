"""Contacts: Person and Company, with nested email addresses, phone numbers and addresses.

Nested arrays follow Clio's rules on create and update: an item with ``id`` updates that item, an item
without creates one, ``{"id": N, "_destroy": true}`` deletes it. ``name`` is required by the schema,
but a Person may send ``first_name``/``last_name`` instead (and Clio splits a lone ``name``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio.app import Ctx, ctx_of
from casebridge.sandbox.clio.errors import ClioError, invalid
from casebridge.sandbox.clio.resource import Link, Resource
from casebridge.sandbox.clio.resources.common import (
    boolean,
    check_if_match,
    choice,
    day,
    no_content,
    reference,
    show,
    text,
)
from casebridge.sandbox.clio.state import Record, SandboxState

TYPES = ("Person", "Company")
EMAIL_NAMES = ("Work", "Home", "Other")
PHONE_NAMES = ("Work", "Home", "Mobile", "Fax", "Pager", "Skype", "Other")
ADDRESS_NAMES = ("Work", "Home", "Billing", "Other")
MAX_ITEMS = 20  # per nested array (Contact association limits, NOTES.md §6.13; an assumption)


def _primary(key: str, attr: str) -> Any:
    def get(_: SandboxState, record: Record) -> Any:
        items = record.get(key) or []
        first = next((i for i in items if i.get("primary")), items[0] if items else None)
        return first.get(attr) if first else None

    return get


def _primary_address(_: SandboxState, record: Record) -> Any:
    items = record.get("addresses") or []
    return next((i for i in items if i.get("primary")), items[0] if items else None)


def _is_client(state: SandboxState, record: Record) -> bool:
    return any(m.get("client_id") == record["id"] for m in state.all("matters"))


CONTACTS = Resource(
    "contacts",
    "Contact",
    "Contact",
    nested={
        "email_addresses": "email_addresses",
        "phone_numbers": "phone_numbers",
        "addresses": "addresses",
        "primary_address": _primary_address,
        "company": Link("contacts", "company_id"),
        "folder": Link("folders", "folder_id"),
        "primary_email_address": _primary("email_addresses", "address"),
        "primary_phone_number": _primary("phone_numbers", "number"),
        "is_client": _is_client,
    },
    search=("name", "first_name", "last_name", "primary_email_address"),
    orders=("id", "name", "created_at", "updated_at"),
)

router = APIRouter()

_ITEM_RULES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], str]] = {
    # key: (the "name" choices' field, its choices, the value fields, the "default" flag's field)
    "email_addresses": ("name", EMAIL_NAMES, ("address",), "default_email"),
    "phone_numbers": ("name", PHONE_NAMES, ("number",), "default_number"),
    "addresses": ("name", ADDRESS_NAMES, ("street", "city", "province", "postal_code", "country"), "primary"),
}


def _items(ctx: Ctx, record: Record, key: str, given: Any) -> None:
    if given is None:
        return
    if not isinstance(given, list):
        raise invalid(f"{key} must be an array")
    name_field, names, values, default_flag = _ITEM_RULES[key]
    items: list[Record] = [dict(i) for i in record.get(key) or []]
    by_id = {i["id"]: i for i in items}
    now_iso = ctx.state.clock.now().isoformat(timespec="seconds")
    for n, raw in enumerate(given):
        where = f"{key}[{n}]"
        if not isinstance(raw, dict):
            raise invalid(f"{where} must be an object")
        if raw.get("id") is not None:
            item = by_id.get(raw["id"])
            if item is None:
                raise invalid(f"{where}: {key} item {raw['id']} does not belong to this contact")
            if raw.get("_destroy"):
                items.remove(item)
                del by_id[item["id"]]
                continue
        else:
            item = {"id": ctx.state.next_id(key), "created_at": now_iso, "primary": False}
            for v in values:
                item[v] = None
            item[name_field] = names[0]
            items.append(item)
            by_id[item["id"]] = item
        if name_field in raw:
            item[name_field] = choice(raw, name_field, names, required=True)
        for v in values:
            if v in raw:
                item[v] = text(raw, v, label=f"{where}.{v}")
        flag = boolean(raw, default_flag)
        if flag is None and "primary" in raw:
            flag = boolean(raw, "primary")
        if flag:
            for other in items:
                other["primary"] = False
            item["primary"] = True
        if values[0] == "address" and not item.get("address"):
            raise invalid(f"{where}.address can't be blank")
        if values[0] == "number" and not item.get("number"):
            raise invalid(f"{where}.number can't be blank")
        item["updated_at"] = now_iso
        item["etag"] = f'"{key}-{item["id"]}-{now_iso}"'
    if len(items) > MAX_ITEMS:
        raise invalid(f"A contact may have at most {MAX_ITEMS} {key.replace('_', ' ')}")
    if items and not any(i.get("primary") for i in items):
        items[0]["primary"] = True
    record[key] = items


def _names(record: Record, data: dict[str, Any], *, creating: bool) -> None:
    for key in ("first_name", "middle_name", "last_name", "prefix", "title"):
        if key in data:
            record[key] = text(data, key)
    if "name" in data:
        record["name"] = text(data, "name")
    if record["type"] == "Person":
        if creating and "name" in data and not (record.get("first_name") or record.get("last_name")):
            parts = (record.get("name") or "").split()
            if len(parts) < 2:
                raise invalid("At least one of first name or last name must be provided")
            record["first_name"], record["last_name"] = parts[0], parts[-1]
        if not (record.get("first_name") or record.get("last_name")):
            raise invalid("At least one of first name or last name must be provided")
        parts = [record.get("first_name"), record.get("middle_name"), record.get("last_name")]
        record["name"] = " ".join(p for p in parts if p)
        record["initials"] = "".join(p[0].upper() for p in parts if p)
    else:
        if not (record.get("name") or "").strip():
            raise invalid("Name can't be blank")
        record["initials"] = "".join(w[0].upper() for w in record["name"].split()[:3])


def _apply(ctx: Ctx, record: Record, data: dict[str, Any], *, creating: bool) -> None:
    _names(record, data, creating=creating)
    if "date_of_birth" in data:
        record["date_of_birth"] = day(data, "date_of_birth")
    for key in ("clio_connect_email", "ledes_client_id", "sales_tax_number"):
        if key in data:
            record[key] = text(data, key)
    if "company" in data:
        record["company_id"] = reference(ctx, data, "company", "contacts", "Company")
        company = ctx.state.get("contacts", record["company_id"]) if record["company_id"] else None
        if company is not None and company["type"] != "Company":
            raise invalid("company must be a Contact of type Company")
    for key in _ITEM_RULES:
        _items(ctx, record, key, data.get(key))


@router.get("/contacts")
def list_contacts(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    q = request.query_params
    rows = ctx.state.all("contacts")
    if q.get("type"):
        if q["type"] not in TYPES:
            raise ClioError(400, "BadRequestError", f"type must be Person or Company; got {q['type']!r}")
        rows = [c for c in rows if c["type"] == q["type"]]
    if q.get("initial"):
        rows = [
            c
            for c in rows
            if (c.get("last_name") or c.get("name") or "").upper().startswith(q["initial"].upper())
        ]
    if q.get("client_only") == "true":
        rows = [c for c in rows if _is_client(ctx.state, c)]
    if q.get("email_only") == "true":
        rows = [c for c in rows if c.get("email_addresses")]
    excluded = {int(i) for i in q.getlist("exclude_ids[]") if i.isdigit()}
    if excluded:
        rows = [c for c in rows if c["id"] not in excluded]
    return JSONResponse(CONTACTS.list(ctx, rows))


@router.post("/contacts")
async def create_contact(request: Request) -> Response:
    ctx = ctx_of(request)
    CONTACTS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    kind = choice(data, "type", TYPES, required=True)
    with ctx.state.lock:
        record: Record = {"id": 0, "type": kind, "email_addresses": [], "phone_numbers": [], "addresses": []}
        for key in (
            "first_name",
            "middle_name",
            "last_name",
            "prefix",
            "title",
            "name",
            "date_of_birth",
            "company_id",
        ):
            record.setdefault(key, None)
        _apply(ctx, record, data, creating=True)
        record["id"] = ctx.state.next_id("contacts")
        ctx.state.put("contacts", ctx.state.stamp(record, created=True))
        ctx.state.changed("contacts", "created", record)
    return show(ctx, CONTACTS, record, status=201)


@router.get("/contacts/{contact_id}")
def show_contact(request: Request, contact_id: int) -> Response:
    ctx = ctx_of(request)
    return show(ctx, CONTACTS, CONTACTS.find(ctx, contact_id))


@router.patch("/contacts/{contact_id}")
async def update_contact(request: Request, contact_id: int) -> Response:
    ctx = ctx_of(request)
    CONTACTS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        current = CONTACTS.find(ctx, contact_id)
        check_if_match(ctx, current)
        record = {**current, **{k: [dict(i) for i in v] for k, v in current.items() if isinstance(v, list)}}
        if "type" in data:
            record["type"] = choice(data, "type", TYPES, required=True)
        _apply(ctx, record, data, creating=False)
        ctx.state.put("contacts", ctx.state.stamp(record))
        ctx.state.changed("contacts", "updated", record, current)
    return show(ctx, CONTACTS, record)


@router.delete("/contacts/{contact_id}")
def delete_contact(request: Request, contact_id: int) -> Response:
    ctx = ctx_of(request)
    with ctx.state.lock:
        record = CONTACTS.find(ctx, contact_id)
        if any(m.get("client_id") == contact_id for m in ctx.state.all("matters")):
            raise invalid("This contact is the client of one or more matters and cannot be deleted")
        ctx.state.remove("contacts", contact_id)
        ctx.state.changed("contacts", "deleted", record)
    return no_content()

"""Clio's side of the sync: contacts and matters read as canonical values (sync/canonical.py) and
written as Clio's request bodies (NOTES.md §3).

Every read asks for exactly the mapped fields (``fields=``), so a page of 200 records carries all we
need and webhooks (created with the same ``fields``) carry whole records.
"""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from casebridge.connectors.clio.client import ClioClient
from casebridge.sync import canonical
from casebridge.sync.entities import RemoteRecord
from casebridge.sync.errors import NeedsPerson, NotFound

PAGE = 200
CONTACT_FIELDS = (
    "id,etag,created_at,updated_at,type,name,first_name,middle_name,last_name,prefix,"
    "email_addresses{id,name,address,primary},phone_numbers{id,name,number,primary},"
    "addresses{id,name,street,city,province,postal_code,country,primary}"
)
MATTER_FIELDS = (
    "id,etag,created_at,updated_at,description,status,open_date,pending_date,close_date,"
    "display_number,client{id},practice_area{id,name}"
)


def _ts(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _record(
    raw: dict[str, Any], values: dict[str, Any], nested: dict[str, Any] | None = None
) -> RemoteRecord:
    updated = _ts(raw.get("updated_at"))
    assert updated is not None
    return RemoteRecord(
        remote_id=int(raw["id"]),
        etag=str(raw.get("etag") or ""),
        updated_at=updated,
        created_at=_ts(raw.get("created_at")),
        values=values,
        raw=nested or {},
    )


def _pair(existing: list[int], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace a nested list: reuse existing item ids by position, create the rest, destroy leftovers."""
    out = [({"id": existing[n]} if n < len(existing) else {}) | item for n, item in enumerate(items)]
    out += [{"id": ident, "_destroy": True} for ident in existing[len(items) :]]
    return out


class _Resource(ABC):
    model = ""
    path = ""
    fields = ""

    @abstractmethod
    def parse(self, raw: dict[str, Any]) -> RemoteRecord | None:
        """The canonical record, or None when ``raw`` lacks a field we need (then we read it)."""

    @abstractmethod
    def create(self, client: ClioClient, values: dict[str, Any]) -> RemoteRecord: ...

    @abstractmethod
    def update(self, client: ClioClient, current: RemoteRecord, changes: dict[str, Any]) -> RemoteRecord: ...

    @abstractmethod
    def find_created(
        self, client: ClioClient, values: dict[str, Any], since: datetime
    ) -> list[RemoteRecord]: ...

    def _parsed(self, raw: dict[str, Any]) -> RemoteRecord:
        record = self.parse(raw)
        if record is None:
            raise NeedsPerson(f"Clio sent a {self.model} without the fields we asked for")
        return record

    def get(self, client: ClioClient, remote_id: int) -> RemoteRecord:
        return self._parsed(client.get(f"{self.path}/{remote_id}", {"fields": self.fields})["data"])

    def delete(self, client: ClioClient, remote_id: int) -> None:
        try:
            client.request("DELETE", f"{self.path}/{remote_id}")
        except NotFound:
            pass  # already gone: the delete has happened

    def first_page(
        self, client: ClioClient, *, updated_since: datetime | None
    ) -> tuple[list[RemoteRecord], str | None]:
        params: dict[str, Any] = {"fields": self.fields, "limit": PAGE, "order": "id(asc)"}
        if updated_since is not None:
            params["updated_since"] = _iso(updated_since)
        body = client.get(self.path, params)
        next_url = ((body.get("meta") or {}).get("paging") or {}).get("next")
        return [self._parsed(r) for r in body.get("data") or []], next_url

    def next_page(self, client: ClioClient, url: str) -> tuple[list[RemoteRecord], str | None]:
        rows, next_url = client.page_at(url)
        return [self._parsed(r) for r in rows], next_url

    def _search(self, client: ClioClient, params: dict[str, Any]) -> list[RemoteRecord]:
        found: list[RemoteRecord] = []
        for rows, _next in client.pages(self.path, {"fields": self.fields, "limit": PAGE, **params}):
            found += [self._parsed(r) for r in rows]
        return found


class ClioContacts(_Resource):
    model = "contact"
    path = "/contacts"
    fields = CONTACT_FIELDS

    def parse(self, raw: dict[str, Any]) -> RemoteRecord | None:
        if not {"type", "updated_at", "email_addresses", "phone_numbers", "addresses"} <= raw.keys():
            return None
        emails = raw.get("email_addresses") or []
        phones = raw.get("phone_numbers") or []
        addresses = raw.get("addresses") or []
        values = canonical.contact(
            kind_="person" if raw["type"] == "Person" else "company",
            prefix=raw.get("prefix"),
            first_name=raw.get("first_name"),
            middle_name=raw.get("middle_name"),
            last_name=raw.get("last_name"),
            company_name=raw.get("name"),
            emails_=[
                {"address": e.get("address"), "kind": e.get("name"), "primary": e.get("primary")}
                for e in emails
            ],
            phones_=[
                {"number": p.get("number"), "kind": p.get("name"), "primary": p.get("primary")}
                for p in phones
            ],
            addresses_=[
                {
                    "kind": a.get("name"),
                    "street": a.get("street"),
                    "city": a.get("city"),
                    "region": a.get("province"),
                    "postal_code": a.get("postal_code"),
                    "country": a.get("country"),
                    "primary": a.get("primary"),
                }
                for a in addresses
            ],
        )
        nested = {
            "emails": [int(e["id"]) for e in emails if canonical.text(e.get("address"))],
            "phones": [int(p["id"]) for p in phones if canonical.text(p.get("number"))],
            "addresses": [int(a["id"]) for a in addresses],
        }
        return _record(raw, values, nested)

    @staticmethod
    def body(values: dict[str, Any], nested: dict[str, Any] | None, *, creating: bool) -> dict[str, Any]:
        nested = nested or {}
        data: dict[str, Any] = {}
        person = values.get("kind", "person") == "person"
        if creating:
            data["type"] = "Person" if person else "Company"
        for key in ("prefix", "first_name", "middle_name", "last_name"):
            if key in values:
                data[key] = values[key]
        if "company_name" in values and values["company_name"] is not None:
            data["name"] = values["company_name"]
        if "emails" in values:
            items = [
                {"name": e["kind"].capitalize(), "address": e["address"], "default_email": e["primary"]}
                for e in values["emails"]
            ]
            data["email_addresses"] = _pair(nested.get("emails", []), items)
        if "phones" in values:
            items = [
                {"name": p["kind"].capitalize(), "number": p["number"], "default_number": p["primary"]}
                for p in values["phones"]
            ]
            data["phone_numbers"] = _pair(nested.get("phones", []), items)
        if "addresses" in values:
            items = [
                {
                    "name": a["kind"].capitalize(),
                    "street": a["street"],
                    "city": a["city"],
                    "province": a["region"],
                    "postal_code": a["postal_code"],
                    "country": a["country"],
                    "primary": a["primary"],
                }
                for a in values["addresses"]
            ]
            data["addresses"] = _pair(nested.get("addresses", []), items)
        return data

    def create(self, client: ClioClient, values: dict[str, Any]) -> RemoteRecord:
        body = {"data": self.body(values, None, creating=True)}
        response = client.request("POST", self.path, params={"fields": self.fields}, json=body)
        return self._parsed(response.json()["data"])

    def update(self, client: ClioClient, current: RemoteRecord, changes: dict[str, Any]) -> RemoteRecord:
        body = {"data": self.body(changes, current.raw, creating=False)}
        response = client.request(
            "PATCH",
            f"{self.path}/{current.remote_id}",
            params={"fields": self.fields},
            json=body,
            if_match=current.etag or None,
        )
        return self._parsed(response.json()["data"])

    @staticmethod
    def _query(values: dict[str, Any]) -> str:
        if values.get("kind") == "company":
            return str(values.get("company_name") or "")
        return str(values.get("last_name") or values.get("first_name") or "")

    def find_created(self, client: ClioClient, values: dict[str, Any], since: datetime) -> list[RemoteRecord]:
        params = {"created_since": _iso(since), "query": self._query(values)}
        return [r for r in self._search(client, params) if r.values == values]


class ClioMatters(_Resource):
    model = "matter"
    path = "/matters"
    fields = MATTER_FIELDS

    def __init__(self) -> None:
        self._areas: dict[tuple[uuid.UUID, str], int] = {}
        self._lock = threading.Lock()

    def parse(self, raw: dict[str, Any]) -> RemoteRecord | None:
        if not {"description", "status", "updated_at", "client"} <= raw.keys():
            return None
        client = raw.get("client") or {}
        area = raw.get("practice_area") or {}
        values = canonical.matter(
            title=raw.get("description"),
            status=raw.get("status"),
            open_date=raw.get("open_date"),
            pending_date=raw.get("pending_date"),
            close_date=raw.get("close_date"),
            practice_area=area.get("name") if isinstance(area, dict) else None,
            client=int(client["id"]) if isinstance(client, dict) and client.get("id") is not None else None,
            display_number=raw.get("display_number"),
        )
        return _record(raw, values)

    def _practice_area(self, client: ClioClient, name: str) -> int:
        key = (client.connection_id, name.lower())
        with self._lock:
            known = self._areas.get(key)
        if known is not None:
            return known
        found = client.get("/practice_areas", {"name": name, "fields": "id,name"})["data"]
        if found:
            ident = int(found[0]["id"])
        else:
            created = client.request(
                "POST", "/practice_areas", params={"fields": "id"}, json={"data": {"name": name}}
            )
            ident = int(created.json()["data"]["id"])
        with self._lock:
            self._areas[key] = ident
        return ident

    def forget_practice_areas(self, connection_id: uuid.UUID) -> None:
        with self._lock:
            for key in [k for k in self._areas if k[0] == connection_id]:
                del self._areas[key]

    def body(self, client: ClioClient, values: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if "title" in values:
            data["description"] = values["title"]
        if "status" in values:
            data["status"] = values["status"]
        for key in ("open_date", "pending_date", "close_date"):
            if key in values:
                data[key] = values[key]
        if "client" in values:
            data["client"] = {"id": values["client"]}
        if "practice_area" in values:
            name = values["practice_area"]
            data["practice_area"] = {"id": self._practice_area(client, name)} if name else None
        return data

    def _write(
        self, client: ClioClient, method: str, path: str, values: dict[str, Any], etag: str | None
    ) -> RemoteRecord:
        for attempt in (1, 2):
            try:
                response = client.request(
                    method,
                    path,
                    params={"fields": self.fields},
                    json={"data": self.body(client, values)},
                    if_match=etag,
                )
                return self._parsed(response.json()["data"])
            except NeedsPerson as exc:
                if "Practice area" not in str(exc) or attempt == 2:
                    raise
                self.forget_practice_areas(client.connection_id)  # deleted in Clio: look it up again
        raise AssertionError("unreachable")

    def create(self, client: ClioClient, values: dict[str, Any]) -> RemoteRecord:
        sent = {k: v for k, v in values.items() if k != "display_number"}
        return self._write(client, "POST", self.path, sent, None)

    def update(self, client: ClioClient, current: RemoteRecord, changes: dict[str, Any]) -> RemoteRecord:
        sent = {k: v for k, v in changes.items() if k != "display_number"}
        return self._write(client, "PATCH", f"{self.path}/{current.remote_id}", sent, current.etag or None)

    def find_created(self, client: ClioClient, values: dict[str, Any], since: datetime) -> list[RemoteRecord]:
        params = {"created_since": _iso(since), "client_id": values.get("client")}
        keys = [k for k in values if k != "display_number"]
        return [r for r in self._search(client, params) if all(r.values.get(k) == values[k] for k in keys)]


CLIO_CONTACTS = ClioContacts()
CLIO_MATTERS = ClioMatters()
REMOTES: dict[str, _Resource] = {"contact": CLIO_CONTACTS, "matter": CLIO_MATTERS}

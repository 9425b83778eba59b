"""What every Clio resource shares: rendering a stored record through a ``fields`` selection,
resolving its nested objects, and the common list filters, ordering and paging.

Records are stored whole (every field the sandbox models, plus ``_``-prefixed internals) and rendered
per request. A nested field resolves through a :class:`Link` (another table, by an id held in the
record), an inline value (``email_addresses``), or a function.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from casebridge.sandbox.clio import fields as fieldsel
from casebridge.sandbox.clio.errors import ClioError, bad_request, not_found
from casebridge.sandbox.clio.spec import fields_of
from casebridge.sandbox.clio.state import Record, SandboxState

if TYPE_CHECKING:
    from casebridge.sandbox.clio.app import Ctx

MAX_LIMIT = 200
OFFSET_CAP = 10_000


@dataclass(frozen=True)
class Link:
    """A nested object held in another table: ``matter.client`` is ``contacts[record["client_id"]]``."""

    kind: str
    key: str


Resolver = Link | str | Callable[[SandboxState, Record], Any]  # str: an inline key of the record


@dataclass
class Resource:
    kind: str  # the table, also the URL segment: "contacts"
    schema: str  # the spec schema of one record: "Contact"
    label: str  # for messages: "Contact"
    # How nested objects (and computed plain fields) are found; other fields are the record's own keys.
    nested: dict[str, Resolver] = field(default_factory=dict)
    search: tuple[str, ...] = ()  # fields ``query`` matches (case-insensitive substring)
    orders: tuple[str, ...] = ("id",)
    max_limit: int = MAX_LIMIT
    hidden: Callable[[Record, dict[str, str]], bool] | None = None  # e.g. trashed, unfinished uploads

    # rendering -------------------------------------------------------------------------------------

    def selection(self, ctx: Ctx) -> fieldsel.Selection:
        sel = fieldsel.parse(ctx.request.query_params.get("fields"))
        fieldsel.check(sel, self.schema)
        return sel

    def resolve(self, state: SandboxState, record: Record, name: str) -> Any:
        how = self.nested.get(name)
        if how is None:
            return record.get(name)
        if isinstance(how, Link):
            ident = record.get(how.key)
            return state.get(how.kind, ident) if ident is not None else None
        if isinstance(how, str):
            return record.get(how)
        return how(state, record)

    def render(self, state: SandboxState, record: Record, sel: fieldsel.Selection) -> dict[str, Any]:
        known = fields_of(self.schema)
        out: dict[str, Any] = {}
        for name, sub in sel.items():
            spec_field = known[name]
            if spec_field.nested is None:
                out[name] = jsonable(
                    self.resolve(state, record, name) if name in self.nested else record.get(name)
                )
                continue
            value = self.resolve(state, record, name)
            keys = fieldsel.nested_keys(spec_field.nested, sub)
            if value is None:
                out[name] = [] if spec_field.many else None
            elif isinstance(value, list):
                out[name] = [jsonable(fieldsel.pick(v, keys)) for v in value]
            else:
                out[name] = jsonable(fieldsel.pick(value, keys))
        return out

    # lookups ----------------------------------------------------------------------------------------

    def find(self, ctx: Ctx, ident: int, *, include_hidden: bool = False) -> Record:
        record = ctx.state.get(self.kind, ident)
        if record is None or (not include_hidden and self.is_hidden(record, {})):
            raise not_found(self.label, ident)
        return record

    def is_hidden(self, record: Record, params: dict[str, str]) -> bool:
        return self.hidden is not None and self.hidden(record, params)

    # listing ---------------------------------------------------------------------------------------

    def list(self, ctx: Ctx, records: Iterable[Record]) -> dict[str, Any]:
        """Common filters (``ids[]``, ``created_since``, ``updated_since``, ``query``), ``order`` and
        paging over ``records`` (already narrowed by the resource's own filters)."""
        q = ctx.request.query_params
        params = dict(q)
        sel = self.selection(ctx)
        rows = [r for r in records if not self.is_hidden(r, params)]
        ids = q.getlist("ids[]") or q.getlist("ids")
        if ids:
            wanted = {_int("ids[]", i) for i in ids}
            rows = [r for r in rows if r["id"] in wanted]
        for param, key in (("created_since", "created_at"), ("updated_since", "updated_at")):
            if q.get(param):
                since = _timestamp(param, q[param])
                rows = [r for r in rows if datetime.fromisoformat(r[key]) > since]
        if q.get("query"):
            needle = q["query"].lower()
            rows = [r for r in rows if any(needle in str(r.get(f) or "").lower() for f in self.search)]
        order_field, descending = self._order(q.get("order"))
        rows.sort(key=lambda r: r["id"])
        rows.sort(key=lambda r: _sort_key(r.get(order_field)), reverse=descending)
        limit = _int("limit", q.get("limit", str(self.max_limit)))
        if not 1 <= limit <= self.max_limit:
            raise bad_request(f"limit must be between 1 and {self.max_limit}")
        total = len(rows)
        cursor_mode = "offset" not in q and order_field == "id" and not descending
        next_params: dict[str, str] | None = None
        if cursor_mode:
            after = _decode_token(q["page_token"]) if q.get("page_token") else None
            if after is not None:
                rows = [r for r in rows if r["id"] > after]
            page = rows[:limit]
            if len(rows) > limit:
                next_params = {"page_token": _encode_token(page[-1]["id"])}
        else:
            offset = _int("offset", q.get("offset", "0"))
            if offset < 0:
                raise bad_request("offset must not be negative")
            if offset >= OFFSET_CAP:
                raise ClioError(
                    422,
                    "ArgumentError",
                    f"offset pagination is limited to the first {OFFSET_CAP:,} records; "
                    "use cursor pagination (order=id(asc), no offset) to page further",
                )
            page = rows[offset : offset + limit]
            if offset + limit < total:
                next_params = {"offset": str(offset + limit)}
        paging: dict[str, str] = {}
        if next_params is not None:
            kept = [(k, v) for k, v in q.multi_items() if k not in ("page_token", "offset")]
            paging["next"] = (
                f"{ctx.base_url}{ctx.request.url.path}?{urlencode(kept + list(next_params.items()))}"
            )
        return {
            "data": [self.render(ctx.state, r, sel) for r in page],
            "meta": {"paging": paging, "records": total},
        }

    def _order(self, raw: str | None) -> tuple[str, bool]:
        if not raw:
            return "id", False
        name, _, direction = raw.partition("(")
        direction = direction.rstrip(")") or "asc"
        if name not in self.orders or direction not in ("asc", "desc"):
            allowed = ", ".join(f"{o}(asc|desc)" for o in self.orders)
            raise bad_request(f"Invalid order: {raw}; allowed: {allowed}")
        return name, direction == "desc"


def jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (1, "")
    if isinstance(value, bool | int | float | Decimal):
        return (0, float(value))
    return (0, str(value).lower())


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}") from None


def _timestamp(name: str, raw: str) -> datetime:
    try:
        ts = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an ISO-8601 timestamp, got {raw!r}") from None
    if ts.tzinfo is None:
        raise bad_request(f"{name} must carry a time zone offset, got {raw!r}")
    return ts


def _encode_token(after: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        return int(json.loads(base64.urlsafe_b64decode(padded))["after"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("Invalid page_token") from None

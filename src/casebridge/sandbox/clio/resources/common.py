"""Handler helpers every resource uses: show with conditional GET, If-Match, create/update/delete
responses, and validators for request bodies that answer Clio's 422 with a precise message."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio.app import Ctx
from casebridge.sandbox.clio.errors import ClioError, invalid
from casebridge.sandbox.clio.resource import Resource
from casebridge.sandbox.clio.state import Record


def _validators(record: Record) -> dict[str, str]:
    headers = {"ETag": record["etag"]}
    if record.get("updated_at"):
        headers["Last-Modified"] = format_datetime(datetime.fromisoformat(record["updated_at"]), usegmt=True)
    return headers


def show(ctx: Ctx, res: Resource, record: Record, *, status: int = 200) -> Response:
    """One record, honouring ``If-None-Match`` and ``If-Modified-Since`` (304)."""
    sel = res.selection(ctx)
    headers = _validators(record)
    if status == 200:
        inm = ctx.request.headers.get("if-none-match")
        if inm is not None:
            tags = {t.strip() for t in inm.split(",")}
            if record["etag"] in tags or "*" in tags:
                return Response(status_code=304, headers=headers)
        ims = ctx.request.headers.get("if-modified-since")
        if inm is None and ims and record.get("updated_at"):
            try:
                since = parsedate_to_datetime(ims)
            except (TypeError, ValueError):
                since = None
            updated = datetime.fromisoformat(record["updated_at"]).replace(microsecond=0)
            if since is not None and since.tzinfo is not None and updated <= since:
                return Response(status_code=304, headers=headers)
    return JSONResponse({"data": res.render(ctx.state, record, sel)}, status_code=status, headers=headers)


def check_if_match(ctx: Ctx, record: Record) -> None:
    """``If-Match`` on PATCH: 412 unless it names the record's current ETag."""
    header = ctx.request.headers.get("if-match")
    if header is None:
        return
    tags = {t.strip() for t in header.split(",")}
    if record["etag"] not in tags and "*" not in tags:
        raise ClioError(
            412,
            "PreconditionFailed",
            f"The record has changed: If-Match {header} does not match the current ETag {record['etag']}",
        )


def no_content() -> Response:
    return Response(status_code=204)


# --- validators --------------------------------------------------------------------------------


def text(data: dict[str, Any], key: str, *, required: bool = False, label: str = "") -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise invalid(f"{label or key} can't be blank")
        return None
    if not isinstance(value, str):
        raise invalid(f"{label or key} must be a string")
    if required and not value.strip():
        raise invalid(f"{label or key} can't be blank")
    return value


def boolean(data: dict[str, Any], key: str) -> bool | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(f"{key} must be true or false")
    return value


def choice(data: dict[str, Any], key: str, allowed: tuple[str, ...], *, required: bool = False) -> str | None:
    value = text(data, key, required=required)
    if value is not None and value not in allowed:
        raise invalid(f"{key} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def day(data: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = text(data, key, required=required)
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise invalid(f"{key} must be a date (YYYY-MM-DD); got {value!r}") from None


def timestamp(data: dict[str, Any], key: str) -> str | None:
    value = text(data, key)
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid(f"{key} must be an ISO-8601 timestamp; got {value!r}") from None
    if ts.tzinfo is None:
        raise invalid(f"{key} must carry a time zone offset; got {value!r}")
    return ts.isoformat(timespec="seconds")


def number(data: dict[str, Any], key: str, *, minimum: Decimal | None = None) -> Decimal | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid(f"{key} must be a number")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise invalid(f"{key} must be a number; got {value!r}") from None
    if not result.is_finite() or (minimum is not None and result < minimum):
        raise invalid(
            f"{key} must be a number of at least {minimum}" if minimum is not None else f"{key} is invalid"
        )
    return result


def reference(
    ctx: Ctx, data: dict[str, Any], key: str, kind: str, label: str, *, required: bool = False
) -> int | None:
    """``{key: {"id": N}}``: the id of an existing ``kind`` record (422 otherwise)."""
    value = data.get(key)
    if value is None:
        if required:
            raise invalid(f"{label} can't be blank")
        return None
    if (
        not isinstance(value, dict)
        or isinstance(value.get("id"), bool)
        or not isinstance(value.get("id"), int)
    ):
        raise invalid(f'{key} must be an object with an integer id, like {{"id": 1}}')
    ident = int(value["id"])
    if ctx.state.get(kind, ident) is None:
        raise invalid(f"{label} with id {ident} does not exist")
    return ident

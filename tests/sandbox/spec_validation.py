"""Validate sandbox responses against the committed, trimmed Clio spec.

The spec (re-exported by openapi-generator) marks nothing ``nullable``, while Clio sends ``null`` for
unset values; so every property here also admits ``null`` (docs/clio-sandbox.md, assumption A1).
Formats ``date`` and ``date-time`` are checked; ``int64``/``int32`` and the rest are not.
"""

from __future__ import annotations

import copy
import re
from datetime import date, datetime
from functools import cache
from typing import Any

import httpx
from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import best_match

from casebridge.sandbox.clio.spec import spec

_FORMATS = FormatChecker()


@_FORMATS.checks("date")
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    date.fromisoformat(value)
    return True


@_FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is None:
        raise ValueError(f"{value!r} has no time zone offset")
    return True


def _nullable(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _nullable(v) for k, v in node.items()}
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if "$ref" in out:  # a nullable reference
            out = {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], **out}
        return out
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


# Known inconsistencies of the spec itself, relaxed here (docs/clio-sandbox.md, assumption A2): the
# response enum of PhoneNumber.name (Work|Personal|Other) cannot hold the request's own values
# (Work|Home|Mobile|Fax|Pager|Skype|Other), which Clio stores and returns.
_RELAXED = {("PhoneNumber_base", "name"): "enum"}
# Properties the spec types wrongly, replaced here: Bill.available_state_transitions lists transitions
# but is typed one string of their enum; ExpenseCategory.rate is typed int32 in responses though a rate
# is any number (the request's type) (docs/clio-sandbox.md, bills and expense categories).
_CORRECTED: dict[tuple[str, str], dict[str, Any]] = {
    ("Bill_base", "available_state_transitions"): {
        "type": "array",
        "items": {
            "type": "string",
            "enum": ["awaiting_approval", "awaiting_payment", "paid", "void", "deleted"],
        },
    },
    ("ExpenseCategory_base", "rate"): {"type": "number", "format": "double"},
}


@cache
def _components() -> dict[str, Any]:
    schemas = copy.deepcopy(spec()["components"]["schemas"])
    for (schema, prop), keyword in _RELAXED.items():
        schemas[schema]["properties"][prop].pop(keyword, None)
    for (schema, prop), replacement in _CORRECTED.items():
        schemas[schema]["properties"][prop] = copy.deepcopy(replacement)
    return {"schemas": _nullable(schemas)}


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    out = []
    for template in spec()["paths"]:
        bare = template.removesuffix(".json")
        pattern = re.sub(r"\\\{[a-z_]+\\\}", r"[0-9]+", re.escape(bare))
        out.append((re.compile(f"^/api/v4{pattern}(?:\\.json)?$"), template))
    return out


def operation_for(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for pattern, template in _templates():
        if pattern.match(path):
            op = spec()["paths"][template].get(method.lower())
            if op is not None:
                return template, op
    raise AssertionError(f"{method} {path} is not an operation of the trimmed spec")


# Operations Clio documents only in prose (NOTES.md §0): no schema to check against.
PROSE_ONLY = (re.compile(r"^/api/v4/webhooks/[0-9]+/activate(?:\.json)?$"),)


def validate(response: httpx.Response) -> None:
    """Raise if the response's body does not match the spec's schema for its operation and status."""
    request = response.request
    if any(p.match(request.url.path) for p in PROSE_ONLY):
        return
    template, op = operation_for(request.method, request.url.path)
    status = str(response.status_code)
    declared = op["responses"].get(status)
    if declared is None:
        if response.status_code in (304, 204, 303):
            return
        if response.status_code < 400:
            raise AssertionError(
                f"{request.method} {template}: status {status} is not in the spec ({list(op['responses'])})"
            )
        # Error statuses Clio documents for every operation (410 version, 412 If-Match, ...) but the spec
        # lists per operation only in part: they carry the spec's one error body.
        declared = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    content = declared.get("content")
    if not content:
        return
    schema = next(iter(content.values()))["schema"]
    root = {**_nullable(schema), "components": _components()}
    error = best_match(Draft7Validator(root, format_checker=_FORMATS).iter_errors(response.json()))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise AssertionError(f"{request.method} {template} {status}: at {where or '(root)'}: {error.message}")

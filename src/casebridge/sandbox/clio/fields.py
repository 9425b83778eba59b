"""The ``fields`` parameter: ``id,etag,matter{id,description},client`` (one level of braces)."""

from __future__ import annotations

from typing import Any

from casebridge.sandbox.clio.errors import bad_request
from casebridge.sandbox.clio.spec import default_nested_fields, fields_of

Selection = dict[str, "Selection | None"]  # a nested field maps to its sub-selection, None = defaults
DEFAULT: Selection = {"id": None, "etag": None}


def parse(raw: str | None) -> Selection:
    if raw is None or not raw.strip():
        return dict(DEFAULT)
    out: Selection = {}
    depth = 0
    name = ""
    inner = ""
    for ch in raw + ",":
        if ch == "{":
            if depth >= 1:
                raise bad_request("fields: only one level of nesting is supported (e.g. matter{id,client})")
            depth += 1
            continue
        if ch == "}":
            if depth == 0:
                raise bad_request("fields: unbalanced '}'")
            depth -= 1
            continue
        if ch == "," and depth == 0:
            key = name.strip()
            if key:
                sub = [s.strip() for s in inner.split(",") if s.strip()] if inner else None
                out[key] = dict.fromkeys(sub) if sub is not None else None
            elif inner:
                raise bad_request("fields: a nested selection needs a field name before '{'")
            name, inner = "", ""
            continue
        if depth:
            inner += ch
        else:
            name += ch
    if depth:
        raise bad_request("fields: unbalanced '{'")
    return out


def check(selection: Selection, schema: str) -> None:
    """400 for a field the schema does not have, or braces on a plain field."""
    known = fields_of(schema)
    for name, sub in selection.items():
        spec_field = known.get(name)
        if spec_field is None:
            raise bad_request(f"Invalid field: {name}")
        if sub is not None:
            if spec_field.nested is None:
                raise bad_request(f"Invalid field: {name} is not a nested object")
            nested = fields_of(spec_field.nested)
            for sub_name in sub:
                if sub_name not in nested:
                    raise bad_request(f"Invalid field: {name}{{{sub_name}}}")


def pick(value: Any, keys: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: value.get(k) for k in keys}
    return value


def nested_keys(schema: str, sub: Selection | None) -> list[str]:
    return list(sub) if sub is not None else list(default_nested_fields(schema))

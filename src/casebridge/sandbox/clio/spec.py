"""The committed, trimmed Clio spec (scripts/trim_clio_spec.py) and what the sandbox reads from it: the
fields each resource has, which of them are nested objects, and the schema each nested field uses.

``fields`` validation follows the spec: a field the resource's schema does not name is a 400, exactly
as Clio answers; a field it names that the sandbox does not model renders as ``null``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@cache
def spec() -> dict[str, Any]:
    text = resources.files("casebridge.sandbox.clio").joinpath("spec/clio-api-v4.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def schemas() -> dict[str, Any]:
    result: dict[str, Any] = spec()["components"]["schemas"]
    return result


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[1]


@dataclass(frozen=True)
class Field:
    name: str
    nested: str | None  # the nested object's schema, for object and array-of-object fields
    many: bool  # an array of objects


@cache
def fields_of(schema: str) -> dict[str, Field]:
    """The properties of a schema, following ``allOf``."""
    node = schemas()[schema]
    out: dict[str, Field] = {}
    for part in node.get("allOf", [node]):
        if "$ref" in part:
            out.update(fields_of(_ref_name(part["$ref"])))
            continue
        for name, prop in part.get("properties", {}).items():
            if "$ref" in prop:
                out[name] = Field(name, _ref_name(prop["$ref"]), False)
            elif prop.get("type") == "array" and "$ref" in prop.get("items", {}):
                out[name] = Field(name, _ref_name(prop["items"]["$ref"]), True)
            else:
                out[name] = Field(name, None, False)
    return out


@cache
def default_nested_fields(schema: str) -> tuple[str, ...]:
    """What a nested object without braces shows: ``id`` and ``etag`` where it has them (Clio's
    default), otherwise its plain fields (``put_headers`` items are ``name`` and ``value``)."""
    plain = [f.name for f in fields_of(schema).values() if f.nested is None]
    chosen = [f for f in ("id", "etag") if f in plain]
    return tuple(chosen or plain)

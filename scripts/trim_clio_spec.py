"""Write the trimmed copy of Clio's API v4 spec that the sandbox and its tests use.

Tests must not read ../shared at run time, so the parts of ``../shared/clio/openapi.json`` the sandbox
implements (its paths, and every schema they reach) are committed, with prose stripped
(``description``, ``example``, ``title``, ``x-*``), as
``src/casebridge/sandbox/clio/spec/clio-api-v4.json``. Re-run after changing ``PATHS``:

    .venv/bin/python scripts/trim_clio_spec.py [--source ../shared/clio/openapi.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "clio" / "openapi.json"
TARGET = ROOT / "src" / "casebridge" / "sandbox" / "clio" / "spec" / "clio-api-v4.json"

# Every path the sandbox serves (with and without ``.json``; the spec spells them with it).
PATHS = (
    "/users.json",
    "/users/who_am_i.json",
    "/users/{id}.json",
    "/contacts.json",
    "/contacts/{id}.json",
    "/matters.json",
    "/matters/{id}.json",
    "/practice_areas.json",
    "/practice_areas/{id}.json",
    "/activities.json",
    "/activities/{id}.json",
    "/documents.json",
    "/documents/{id}.json",
    "/documents/{id}/download.json",
    "/documents/{id}/versions.json",
    "/folders.json",
    "/folders/{id}.json",
    "/folders/list.json",
    "/expense_categories.json",
    "/expense_categories/{id}.json",
    "/bills.json",
    "/bills/{id}.json",
    "/webhooks.json",
    "/webhooks/{id}.json",
)
DROP = {"description", "example", "examples", "title", "summary", "tags"}


def strip(node: Any, *, names: bool = False) -> Any:
    """Drop prose keywords. Under ``properties`` every key is a field name (a Matter has a field called
    ``description``, a Contact one called ``title``): those are kept."""
    if isinstance(node, dict):
        if names:
            return {k: strip(v) for k, v in node.items()}
        return {
            k: strip(v, names=k == "properties")
            for k, v in node.items()
            if k not in DROP and not k.startswith("x-")
        }
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for v in node.values():
            found |= refs(v)
    elif isinstance(node, list):
        for v in node:
            found |= refs(v)
    return found


def trim(spec: dict[str, Any]) -> dict[str, Any]:
    missing = [p for p in PATHS if p not in spec["paths"]]
    if missing:
        raise SystemExit(f"not in the source spec: {', '.join(missing)}")
    paths = {p: strip(spec["paths"][p]) for p in PATHS}
    schemas = spec["components"]["schemas"]
    keep: set[str] = set()
    todo = refs(paths)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo |= refs(schemas[name]) - keep
    return {
        "openapi": spec["openapi"],
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "x-trimmed-from": "shared/clio/openapi.json by scripts/trim_clio_spec.py",
        "paths": paths,
        "components": {"schemas": {name: strip(schemas[name]) for name in sorted(keep)}},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--target", type=Path, default=TARGET)
    opts = ap.parse_args(argv)
    if not opts.source.exists():
        print(f"error: {opts.source} not found (the shared reference material)", file=sys.stderr)
        return 2
    trimmed = trim(json.loads(opts.source.read_text(encoding="utf-8")))
    opts.target.parent.mkdir(parents=True, exist_ok=True)
    opts.target.write_text(json.dumps(trimmed, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    n = len(trimmed["components"]["schemas"])
    print(f"wrote {opts.target.relative_to(ROOT)}: {len(trimmed['paths'])} paths, {n} schemas")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""docs/clio-sandbox.md lists every operation the sandbox serves: this keeps the table and the routes
in step."""

from __future__ import annotations

import re
from pathlib import Path

from casebridge.sandbox.clio import create_app

DOC = Path(__file__).resolve().parents[2] / "docs" / "clio-sandbox.md"
OUTSIDE = {("GET", "/oauth/authorize"), ("POST", "/oauth/token"), ("POST", "/oauth/deauthorize")}


def _served() -> set[tuple[str, str]]:
    paths = create_app().openapi()["paths"]
    served = set(OUTSIDE)
    for path, ops in paths.items():
        if not path.startswith("/api/v4/"):
            continue
        generic = re.sub(r"\{[a-z_]+\}", "{id}", path.removeprefix("/api/v4"))
        served |= {(method.upper(), generic) for method in ops}
    return served


def _documented() -> set[tuple[str, str]]:
    section = DOC.read_text().split("## Coverage, operation by operation", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(GET|POST|PATCH|PUT|DELETE) ([^`]+)` \|", section, re.MULTILINE)
    return {(method, path) for method, path in rows}


def test_every_served_operation_is_in_the_coverage_table() -> None:
    served, documented = _served(), _documented()
    assert served - documented == set(), "add these to the coverage table in docs/clio-sandbox.md"
    extra = documented - served - {("PUT", "/_uploads/{uuid}")}
    assert extra == set(), "the coverage table names operations the sandbox does not serve"

"""Strong ETags from row versions, and the If-None-Match / If-Match checks (RFC 9110)."""

from __future__ import annotations

import hashlib

from fastapi import Request

from casebridge.kit.problems import Problem


def etag_for(entity_id: object, version: int) -> str:
    digest = hashlib.sha256(f"{entity_id}:{version}".encode()).hexdigest()[:20]
    return f'"{digest}"'


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def not_modified(request: Request, etag: str) -> bool:
    """True when the client's If-None-Match already names the current representation (weak comparison)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = _tags(header)
    return "*" in tags or etag in tags


def check_if_match(request: Request, etag: str) -> None:
    """412 when If-Match is present and names none of the current representation (strong comparison)."""
    header = request.headers.get("if-match")
    if header is None:
        return
    tags = [t.strip() for t in header.split(",") if t.strip()]
    if "*" in tags or etag in tags:
        return
    raise Problem(
        412,
        "The resource changed since you read it (If-Match does not match its current ETag); "
        "fetch it again and reapply your change.",
        extra={"current_etag": etag},
    )

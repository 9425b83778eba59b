"""Helpers for single-resource responses: ETag headers, 304s and Location."""

from __future__ import annotations

from fastapi import Request, Response

from casebridge.kit.etag import not_modified


def conditional(request: Request, response: Response, etag: str) -> Response | None:
    """Set the ETag; return a bare 304 when the client's copy is current."""
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag})
    response.headers["ETag"] = etag
    return None


def created(request: Request, response: Response, etag: str, path: str) -> None:
    response.status_code = 201
    response.headers["ETag"] = etag
    response.headers["Location"] = str(request.base_url).rstrip("/") + path

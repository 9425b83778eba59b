"""Documents, their versions, and Clio's three-step upload (NOTES.md §3 "Documents and versions").

1. ``POST /documents`` (``name``, ``parent{id, type}``) makes the document and its first version with
   ``fully_uploaded: false``; ``latest_document_version{uuid,put_url,put_headers}`` says where to send
   the bytes. A ``Document`` parent adds a new version to that document instead.
2. ``PUT`` the bytes to ``put_url`` (this server's ``/_uploads/{uuid}?expires=…&signature=…``, standing
   in for S3: no Clio auth) with every ``put_headers`` header (``Content-Type`` and
   ``x-amz-server-side-encryption: AES256``). It answers like S3: 200 with an ``ETag``, or 403 with an
   XML ``<Error>`` for a bad signature, an expired URL (10 minutes, on the sandbox clock), a missing or
   different header, or a version already confirmed.
3. ``PATCH /documents/{id}`` with ``{uuid, fully_uploaded: true}`` confirms: ``422 UploadNotFoundError``
   if no bytes arrived, ``422 ValidationError`` if that version was confirmed already.

A document none of whose versions is confirmed is left out of lists and is a 404 by id unless
``show_uncompleted=true``. ``latest_document_version`` is the newest version (the one being uploaded,
if any); ``filename``, ``size``, ``content_type`` and ``received_at`` are those of the newest confirmed
version. ``GET /documents/{id}/download`` answers 303 to a signed ``/_downloads/{uuid}`` URL that serves
the bytes (the newest confirmed version, or ``document_version_id``). Folders, the trash and the
``matter``/``contact`` links are shared with folders (resources/folders.py).
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import re
import secrets
import uuid as uuidlib
from typing import Any
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from casebridge.sandbox.clio.app import Ctx, ctx_of
from casebridge.sandbox.clio.errors import ClioError, bad_request, invalid, not_found
from casebridge.sandbox.clio.resource import Resource
from casebridge.sandbox.clio.resources.common import (
    boolean,
    check_if_match,
    no_content,
    reference,
    show,
    text,
    timestamp,
)
from casebridge.sandbox.clio.resources.folders import (
    FOLDER_PARENTS,
    ITEM_SEQUENCE,
    NESTED,
    check_flags,
    common_filters,
    creator,
    external_properties,
    flag,
    hidden_item,
    id_or_null,
    parent_folder,
    refuse_if_trashed,
    restored,
    restoring_and_others,
    scoped,
    trash,
    trashed,
)
from casebridge.sandbox.clio.state import Record, SandboxState, iso

DOCUMENT_PARENTS = ("Document", *FOLDER_PARENTS)
URL_LIFETIME = 600  # seconds, for put_url and download URLs (put_url's own description: 10 minutes)
SSE_HEADER = "x-amz-server-side-encryption"
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*(\s*;.*)?$")

# Extension -> MIME type: Python's built-in table (not the host's /etc/mime.types, so the answer is
# the same everywhere) plus the office formats a law firm sends.
_MIME = mimetypes.MimeTypes()
for _ext, _type in {
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xls": "application/vnd.ms-excel",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".ppt": "application/vnd.ms-powerpoint",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".msg": "application/vnd.ms-outlook",
    ".eml": "message/rfc822",
    ".rtf": "application/rtf",
    ".odt": "application/vnd.oasis.opendocument.text",
}.items():
    _MIME.add_type(_type, _ext)


def content_type_for(filename: str) -> str:
    return _MIME.guess_type(filename, strict=False)[0] or "application/octet-stream"


DOCUMENTS = Resource(
    "documents",
    "Document",
    "Document",
    nested=NESTED,
    search=("name",),
    orders=("id", "name", "created_at", "updated_at", "received_at", "document_number"),
    hidden=hidden_item,
)

VERSIONS = Resource(
    "document_versions",
    "DocumentVersion",
    "DocumentVersion",
    nested={"creator": creator, "put_headers": "put_headers", "multiparts": "multiparts"},
    orders=("id",),
)

router = APIRouter()
outside_router = APIRouter(include_in_schema=False)


# --- versions -------------------------------------------------------------------------------------


def _blob_key(version: Record) -> str:
    return f"document_versions/{version['uuid']}"


def versions_of(state: SandboxState, document_id: int) -> list[Record]:
    rows = [v for v in state.all("document_versions") if v["document_id"] == document_id]
    return sorted(rows, key=lambda v: int(v["version_number"]))


def _signature(version: Record, method: str, expires: str) -> str:
    message = f"{method}\n{version['uuid']}\n{expires}".encode()
    return hmac.new(str(version["_key"]).encode(), message, hashlib.sha256).hexdigest()


def _signed_url(ctx: Ctx, version: Record, method: str) -> str:
    expires = str(int(ctx.state.clock.now().timestamp()) + URL_LIFETIME)
    path = "_uploads" if method == "PUT" else "_downloads"
    query = urlencode({"expires": expires, "signature": _signature(version, method, expires)})
    return f"{ctx.base_url}/{path}/{version['uuid']}?{query}"


def version_fields(data: dict[str, Any], name: str) -> dict[str, Any]:
    """A new version's ``filename``, ``content_type`` and ``received_at``, validated."""
    filename = text(data, "filename") or name
    content_type = text(data, "content_type") or content_type_for(filename)
    if not _CONTENT_TYPE.match(content_type):
        raise invalid(f"content_type must be a MIME type like application/pdf; got {content_type!r}")
    if data.get("multiparts"):
        raise invalid(
            "multiparts: the sandbox does not model multipart uploads; upload the file with one PUT "
            "to latest_document_version.put_url"
        )
    return {"filename": filename, "content_type": content_type, "received_at": timestamp(data, "received_at")}


def _new_version(ctx: Ctx, document: Record, fields: dict[str, Any]) -> Record:
    """A version awaiting its bytes (not stored: the caller stores it once everything is valid)."""
    filename, content_type = fields["filename"], fields["content_type"]
    number = max((int(v["version_number"]) for v in versions_of(ctx.state, document["id"])), default=0) + 1
    version: Record = {
        "id": ctx.state.next_id("document_versions"),
        "document_id": document["id"],
        "uuid": str(uuidlib.uuid4()),
        "filename": filename,
        "content_type": content_type,
        "size": None,
        "version_number": number,
        "received_at": fields["received_at"] or iso(ctx.state.clock.now()),
        "fully_uploaded": False,
        "put_headers": [
            {"name": "Content-Type", "value": content_type},
            {"name": SSE_HEADER, "value": "AES256"},
        ],
        "multiparts": [],
        "creator_id": ctx.user_id,
        "_key": secrets.token_hex(16),
    }
    version["put_url"] = _signed_url(ctx, version, "PUT")
    return ctx.state.stamp(version, created=True)


def sync(state: SandboxState, document: Record, pending: Record | None = None) -> None:
    """Bring a document's own fields in line with its versions (``pending``: one not stored yet)."""
    versions = versions_of(state, document["id"])
    if pending is not None:
        versions = [v for v in versions if v["id"] != pending["id"]] + [pending]
    uploaded = [v for v in versions if v["fully_uploaded"]]
    current = uploaded[-1] if uploaded else versions[-1]
    document["_uploaded"] = bool(uploaded)
    document["_current_version_id"] = current["id"]
    document["_latest_version_id"] = versions[-1]["id"]
    for key in ("filename", "content_type", "size", "received_at"):
        document[key] = current.get(key)


def _confirm(ctx: Ctx, document: Record, data: dict[str, Any]) -> Record:
    """Step 3: the version named by ``uuid`` is fully uploaded. Returns the changed version (unstored)."""
    ident = text(data, "uuid")
    if not ident:
        raise invalid("uuid can't be blank: it names the document version to mark fully uploaded")
    version = next((v for v in versions_of(ctx.state, document["id"]) if v["uuid"] == ident), None)
    if version is None:
        raise invalid(f"uuid {ident} is not a version of Document {document['id']}")
    if version["fully_uploaded"]:
        raise invalid(f"The document version {ident} is already marked as fully uploaded")
    blob = ctx.state.blobs.get(_blob_key(version))
    if blob is None:
        raise ClioError(
            422,
            "UploadNotFoundError",
            f"No file has been uploaded for document version {ident}: PUT the bytes to its put_url "
            "with its put_headers, then mark it fully uploaded",
        )
    changed = {**version, "fully_uploaded": True, "size": len(blob), "put_url": None, "put_headers": []}
    return ctx.state.stamp(changed)


def _copy_version(ctx: Ctx, document: Record, name: str) -> Record | None:
    """``copy_version`` on a rename that changes the extension: a new, complete version with the new
    filename and the current version's bytes."""
    current = ctx.state.get("document_versions", document.get("_current_version_id") or 0)
    if current is None or not current["fully_uploaded"]:
        return None
    old_ext = str(current["filename"]).rpartition(".")[2].lower() if "." in current["filename"] else ""
    new_ext = name.rpartition(".")[2].lower() if "." in name else ""
    if old_ext == new_ext:
        return None
    version = _new_version(ctx, document, version_fields({}, name))
    ctx.state.put_blob(_blob_key(version), ctx.state.blobs.get(_blob_key(current), b""))
    version.update(fully_uploaded=True, size=current["size"], put_url=None, put_headers=[])
    return version


# --- routes -------------------------------------------------------------------------------------


def _find(ctx: Ctx, document_id: int, *, uncompleted: bool = True) -> Record:
    document = ctx.state.get("documents", document_id)
    if document is None or (not uncompleted and not document.get("_uploaded")):
        raise not_found("Document", document_id)
    return document


def _communication(data: dict[str, Any]) -> int | None:
    value = data.get("communication_id")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid("communication_id must be an integer")
    return value


@router.get("/documents")
def list_documents(request: Request) -> JSONResponse:
    ctx = ctx_of(request)
    check_flags(ctx, "include_deleted", "show_uncompleted")
    q = request.query_params
    rows = common_filters(ctx, ctx.state.all("documents"))
    if q.get("parent_id"):
        rows = scoped(ctx, rows, id_or_null("parent_id", q["parent_id"]))
    return JSONResponse(DOCUMENTS.list(ctx, rows))


@router.post("/documents")
async def create_document(request: Request) -> Response:
    ctx = ctx_of(request)
    DOCUMENTS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    name = text(data, "name", required=True, label="Name")
    assert name is not None
    with ctx.state.lock:
        parent = parent_folder(ctx, data, DOCUMENT_PARENTS, required=True)
        assert parent is not None
        fields = version_fields(data, name)
        current: Record | None = None
        if parent["type"] == "Document":  # a new version of an existing document
            current = parent
            refuse_if_trashed(current, "Document")
            record = dict(current)
        else:
            record = {
                "id": 0,
                "type": "Document",
                "name": name,
                "parent_id": parent["id"],
                "locked": False,
                "document_category_id": None,
                "external_properties": [],
                "creator_id": ctx.user_id,
                "communication_id": None,
                "deleted_at": None,
                "_trashed_with": None,
            }
        if "document_category" in data:
            record["document_category_id"] = reference(
                ctx, data, "document_category", "document_categories", "Document category"
            )
        if "communication_id" in data:
            record["communication_id"] = _communication(data)
        external_properties(ctx, record, data.get("external_properties"))
        if current is None:
            record["id"] = ctx.state.next_id(ITEM_SEQUENCE)
        version = _new_version(ctx, record, fields)
        sync(ctx.state, record, version)
        ctx.state.put("document_versions", version)
        ctx.state.put("documents", ctx.state.stamp(record, created=current is None))
        if current is None:
            ctx.state.changed("documents", "created", record)
        else:
            ctx.state.changed("documents", "updated", record, current)
    return show(ctx, DOCUMENTS, record, status=201)


@router.get("/documents/{document_id}/versions")
def list_versions(request: Request, document_id: int) -> JSONResponse:
    ctx = ctx_of(request)
    check_flags(ctx, "fully_uploaded")
    _find(ctx, document_id)
    rows = versions_of(ctx.state, document_id)
    if request.query_params.get("fully_uploaded") is not None:
        wanted = flag(dict(request.query_params), "fully_uploaded")
        rows = [v for v in rows if v["fully_uploaded"] == wanted]
    return JSONResponse(VERSIONS.list(ctx, rows))


@router.get("/documents/{document_id}/download")
def download_document(request: Request, document_id: int) -> Response:
    ctx = ctx_of(request)
    document = _find(ctx, document_id)
    raw = request.query_params.get("document_version_id")
    if raw:
        try:
            version_id = int(raw)
        except ValueError:
            raise bad_request(f"document_version_id must be an integer, got {raw!r}") from None
        version = ctx.state.get("document_versions", version_id)
        if version is None or version["document_id"] != document_id:
            raise not_found("DocumentVersion", version_id)
        if not version["fully_uploaded"]:
            raise bad_request(f"DocumentVersion {version_id} has not been fully uploaded")
    else:
        version = ctx.state.get("document_versions", document.get("_current_version_id") or 0)
        if version is None or not version["fully_uploaded"]:
            raise not_found("Document", document_id)
    return Response(status_code=303, headers={"Location": _signed_url(ctx, version, "GET")})


@router.get("/documents/{document_id}")
def show_document(request: Request, document_id: int) -> Response:
    ctx = ctx_of(request)
    check_flags(ctx, "show_uncompleted")
    uncompleted = flag(dict(request.query_params), "show_uncompleted")
    return show(ctx, DOCUMENTS, _find(ctx, document_id, uncompleted=uncompleted))


@router.patch("/documents/{document_id}")
async def update_document(request: Request, document_id: int) -> Response:
    ctx = ctx_of(request)
    DOCUMENTS.selection(ctx)  # a bad ``fields`` is a 400 before anything is written
    data = await ctx.data()
    with ctx.state.lock:
        current = _find(ctx, document_id)
        check_if_match(ctx, current)
        restoring, others = restoring_and_others(ctx, current, data, "Document")
        record = dict(current)
        if "name" in data:
            record["name"] = text(data, "name", required=True, label="Name")
        if "parent" in data:
            parent = parent_folder(ctx, data, FOLDER_PARENTS, required=True)
            assert parent is not None
            record["parent_id"] = parent["id"]
        if "document_category" in data:
            record["document_category_id"] = reference(
                ctx, data, "document_category", "document_categories", "Document category"
            )
        if "communication_id" in data:
            record["communication_id"] = _communication(data)
        external_properties(ctx, record, data.get("external_properties"))
        received_at = timestamp(data, "received_at")
        copy = boolean(data, "copy_version")
        # fully_uploaded false changes nothing (Clio uses it to add multipart parts, not modelled here)
        confirmed = _confirm(ctx, record, data) if boolean(data, "fully_uploaded") else None
        # everything is valid: write
        if restoring:
            current = restored(ctx, "documents", current, record)
        if not others:
            return show(ctx, DOCUMENTS, current)
        if confirmed is not None:
            ctx.state.put("document_versions", confirmed)
        if copy and "name" in data:
            copied = _copy_version(ctx, record, str(record["name"]))
            if copied is not None:
                ctx.state.put("document_versions", copied)
        if received_at is not None:
            latest = ctx.state.get("document_versions", record["_latest_version_id"])
            if latest is not None:
                ctx.state.put("document_versions", ctx.state.stamp({**latest, "received_at": received_at}))
        sync(ctx.state, record)
        ctx.state.put("documents", ctx.state.stamp(record))
        ctx.state.changed("documents", "updated", record, current)
    return show(ctx, DOCUMENTS, record)


@router.delete("/documents/{document_id}")
def delete_document(request: Request, document_id: int) -> Response:
    ctx = ctx_of(request)
    with ctx.state.lock:
        current = _find(ctx, document_id)
        if not trashed(current):  # trashing a trashed document changes nothing
            trash(ctx, "documents", current)
    return no_content()


# --- the stand-in for S3: no Clio auth, S3's answers ---------------------------------------------


def _s3_error(code: str, message: str, detail: str | None = None, status: int = 403) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        + (f"<SandboxDetail>{escape(detail)}</SandboxDetail>" if detail else "")
        + f"<RequestId>{secrets.token_hex(8).upper()}</RequestId></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def _check_url(state: SandboxState, version: Record | None, method: str, request: Request) -> Response | None:
    """The signed URL's checks, in S3's order: signature, then expiry."""
    q = request.query_params
    expires, signature = q.get("expires", ""), q.get("signature", "")
    if version is None or not expires or not signature:
        return _s3_error("AccessDenied", "Access Denied", "unknown upload or unsigned URL")
    if not hmac.compare_digest(_signature(version, method, expires), signature):
        return _s3_error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    try:
        deadline = int(expires)
    except ValueError:
        return _s3_error("AccessDenied", "Access Denied", "expires is not a unix time")
    if state.clock.now().timestamp() > deadline:
        return _s3_error("AccessDenied", "Request has expired", f"the URL expired at unix time {deadline}")
    return None


def _by_uuid(state: SandboxState, ident: str) -> Record | None:
    return next((v for v in state.all("document_versions") if v["uuid"] == ident), None)


@outside_router.put("/_uploads/{ident}")
async def upload(request: Request, ident: str) -> Response:
    """Step 2 of the upload: the bytes, with every ``put_headers`` header."""
    state: SandboxState = request.app.state.sandbox
    body = await request.body()
    with state.lock:
        version = _by_uuid(state, ident)
        problem = _check_url(state, version, "PUT", request)
        if problem is not None:
            return problem
        assert version is not None
        if version["fully_uploaded"]:
            return _s3_error("AccessDenied", "Access Denied", "this version is already marked fully uploaded")
        for header in version["put_headers"]:
            sent = request.headers.get(header["name"])
            if sent != header["value"]:
                return _s3_error(
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided. "
                    "Check your key and signing method.",
                    f"header {header['name']} must be {header['value']!r}; got {sent!r}",
                )
        state.put_blob(_blob_key(version), body)
    etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
    return Response(status_code=200, headers={"ETag": f'"{etag}"', SSE_HEADER: "AES256"})


@outside_router.get("/_downloads/{ident}")
def download(request: Request, ident: str) -> Response:
    """Where ``/documents/{id}/download`` redirects: the bytes of one version."""
    state: SandboxState = request.app.state.sandbox
    version = _by_uuid(state, ident)
    problem = _check_url(state, version, "GET", request)
    if problem is not None:
        return problem
    assert version is not None
    blob = state.blobs.get(_blob_key(version))
    if blob is None:
        return _s3_error("NoSuchKey", "The specified key does not exist.", status=404)
    filename = str(version["filename"])
    return Response(
        blob,
        media_type=str(version["content_type"]),
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "ETag": f'"{hashlib.md5(blob, usedforsecurity=False).hexdigest()}"',
        },
    )

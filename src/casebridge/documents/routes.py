"""/api/v1/documents

Uploads (``POST /documents`` and ``POST /documents/{id}/versions``) take either a multipart/form-data
body with a ``file`` part, or the raw bytes as the body (any other content type) with the document's
fields as query parameters. Either way the body is streamed to the blob store, hashed and counted, and
only then does the request touch its database session, so no write lock is held while bytes arrive.
Whatever can be checked before the body is read (the size announced by Content-Length, the matter, the
document) is checked first, in a short read transaction, so a doomed upload is refused up front.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import format_datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import quote, unquote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from casebridge.db.session import unit_of_work
from casebridge.documents import repository, service
from casebridge.documents.blobstore import BlobInfo, BlobStore, BlobUpload, too_large
from casebridge.documents.schemas import (
    CONTENT_TYPE_MAX,
    DEFAULT_CONTENT_TYPE,
    FOLDER_MAX,
    NAME_MAX,
    DocumentOut,
    DocumentUpdate,
    VersionList,
    VersionOut,
    check_name,
    clean_filename,
    normalise_folder,
)
from casebridge.events.routes import AfterQuery, history_page
from casebridge.events.schemas import EventPage
from casebridge.kit.context import ALL_ROLES, WRITERS, AppContext, Role
from casebridge.kit.deps import ContextDep, PrincipalDep, Require, SessionDep
from casebridge.kit.etag import check_if_match, etag_for, not_modified
from casebridge.kit.pagination import (
    DEFAULT_LIMIT,
    CursorQuery,
    LimitQuery,
    Page,
    UpdatedSinceQuery,
    order_options,
    paginate,
)
from casebridge.kit.problems import Problem, field_error, not_found, validation
from casebridge.kit.responses import conditional, created
from casebridge.kit.uow import BODY_SHA256, STREAMING_BODY, ApiRoute
from casebridge.models import Document, DocumentVersion

log = logging.getLogger("casebridge.documents")

router = APIRouter(prefix="/documents", tags=["documents"], route_class=ApiRoute)
READ = [Depends(Require(*ALL_ROLES))]
WRITE = [Depends(Require(*WRITERS))]
ADMIN = [Depends(Require(Role.ADMIN))]

# A multipart body may exceed the file size limit by this much (part headers and form fields).
MULTIPART_OVERHEAD = 1024 * 1024
FIELD_MAX_BYTES = 64 * 1024
MAX_PARTS = 16
DOCUMENT_FIELDS = frozenset({"matter_id", "name", "folder_path"})

T = TypeVar("T")


def _upload_body(fields: Mapping[str, Any], raw_note: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {**fields, "file": {"type": "string", "format": "binary"}},
                }
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary", "description": raw_note}
            },
        },
    }


_CREATE_OPENAPI = {
    STREAMING_BODY: True,
    "requestBody": _upload_body(
        {
            "matter_id": {"type": "string", "format": "uuid"},
            "name": {"type": "string", "description": "Defaults to the file's filename."},
            "folder_path": {"type": "string", "description": "`a/b`; empty for the matter's top level."},
        },
        "Any content type other than multipart/form-data: the body is the file, its Content-Type the "
        "file's; give matter_id, name, folder_path and filename as query parameters.",
    ),
}
_VERSION_OPENAPI = {
    STREAMING_BODY: True,
    "requestBody": _upload_body(
        {},
        "Any content type other than multipart/form-data: the body is the file; filename as a query parameter.",
    ),
}
_UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"description": "The file is larger than CASEBRIDGE_MAX_UPLOAD_BYTES; nothing was stored."}
}
_CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The bytes, with the version's Content-Type; ETag is the quoted sha256.",
    },
    304: {"description": "If-None-Match names the content's ETag."},
}

MatterIdQuery = Annotated[
    uuid.UUID | None, Query(description="Raw uploads: the matter to file on (multipart: a form field).")
]
NameQuery = Annotated[
    str | None, Query(max_length=NAME_MAX, description="Raw uploads: the name; defaults to the filename.")
]
FolderQuery = Annotated[
    str | None, Query(max_length=FOLDER_MAX, description="Raw uploads: the folder path within the matter.")
]
FilenameQuery = Annotated[
    str | None,
    Query(max_length=NAME_MAX, description="Raw uploads: the file's name (multipart: from the file part)."),
]


# -- receiving uploads ----------------------------------------------------------------------------------


@dataclass
class Received:
    blob: BlobInfo
    content_type: str
    filename: str | None
    body_sha256: str
    fields: dict[str, str] = field(default_factory=dict)


def _content_type(raw: str | None, field_name: str) -> str:
    value = (raw or "").strip()
    if not value:
        return DEFAULT_CONTENT_TYPE
    if len(value) > CONTENT_TYPE_MAX or not re.match(r"^[\w.+-]+/[\w.+-]+", value):
        raise validation([field_error(field_name, "not a valid media type", "invalid_content_type")])
    return value


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def _check_content_length(request: Request, limit: int, allowance: int) -> None:
    raw = request.headers.get("content-length")
    if raw is None:
        return
    try:
        length = int(raw)
    except ValueError:
        raise Problem(400, "Content-Length is not a number.") from None
    if length > limit + allowance:
        raise too_large(limit)


_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([\w-]*)'[^']*'([^;\s]+)", re.IGNORECASE)


def _part_filename(disposition: bytes, params: dict[bytes, bytes]) -> str | None:
    star = _FILENAME_STAR.search(disposition.decode("latin-1"))
    if star:
        charset = star.group(1) or "utf-8"
        try:
            return clean_filename(unquote(star.group(2), encoding=charset, errors="replace"))
        except LookupError:
            pass
    raw = params.get(b"filename")
    return None if raw is None else clean_filename(raw.decode("utf-8", errors="replace"))


class _MultipartReader:
    """Parse multipart/form-data as it streams: text fields in memory (small), the file to the blob store.

    The raw body is hashed as it arrives (for Idempotency-Key). ``on_file`` runs when the file part
    starts, with the fields read so far, so bad input can be refused before the file is stored.
    """

    def __init__(
        self,
        boundary: bytes,
        store: BlobStore,
        limit: int,
        allowed: frozenset[str],
        on_file: Callable[[dict[str, str]], Awaitable[None]] | None,
    ) -> None:
        self.store = store
        self.limit = limit
        self.allowed = allowed
        self.on_file = on_file
        self.raw_hash = hashlib.sha256()
        self.events: list[tuple[str, bytes]] = []
        self.fields: dict[str, str] = {}
        self.upload: BlobUpload | None = None
        self.file_seen = False
        self.file_content_type = DEFAULT_CONTENT_TYPE
        self.file_name: str | None = None
        self.ended = False
        self.parts = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._part_name = ""
        self._part_is_file = False
        self._part_value = bytearray()

        def data(kind: str) -> Callable[[bytes, int, int], None]:
            return lambda buf, start, end: self.events.append((kind, bytes(buf[start:end])))

        def note(kind: str) -> Callable[[], None]:
            return lambda: self.events.append((kind, b""))

        callbacks: dict[str, Any] = {
            "on_part_begin": note("part_begin"),
            "on_header_field": data("header_field"),
            "on_header_value": data("header_value"),
            "on_header_end": note("header_end"),
            "on_headers_finished": note("headers_finished"),
            "on_part_data": data("part_data"),
            "on_part_end": note("part_end"),
            "on_end": note("end"),
        }
        self.parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]

    async def read(self, request: Request) -> Received:
        received = 0
        body_limit = self.limit + MULTIPART_OVERHEAD
        try:
            async for chunk in request.stream():
                if not chunk:
                    continue
                received += len(chunk)
                if received > body_limit:
                    raise too_large(self.limit)
                self.raw_hash.update(chunk)
                self._feed(chunk)
                await self._drain()
            self._finalize()
            await self._drain()
            if not self.ended:
                raise Problem(400, "The multipart body ended before its closing boundary; send it again.")
            if self.upload is None:
                raise validation(
                    [field_error("body.file", "send the document as a part named 'file'", "missing")]
                )
            blob = await self.upload.finish()
        except BaseException:
            if self.upload is not None:
                self.upload.abort()
            raise
        return Received(blob, self.file_content_type, self.file_name, self.raw_hash.hexdigest(), self.fields)

    def _feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except FormParserError as exc:
            raise Problem(400, f"The multipart body is malformed: {exc}") from None

    def _finalize(self) -> None:
        try:
            self.parser.finalize()
        except FormParserError as exc:
            raise Problem(400, f"The multipart body is malformed: {exc}") from None

    async def _drain(self) -> None:
        events, self.events = self.events, []
        for kind, data in events:
            if kind == "part_data":
                await self._part_data(data)
            elif kind == "header_field":
                self._header_field += data
            elif kind == "header_value":
                self._header_value += data
            elif kind == "header_end":
                self._headers[bytes(self._header_field).strip().lower()] = bytes(self._header_value).strip()
                self._header_field.clear()
                self._header_value.clear()
            elif kind == "part_begin":
                self.parts += 1
                if self.parts > MAX_PARTS:
                    raise Problem(400, f"The multipart body has more than {MAX_PARTS} parts.")
                self._headers = {}
                self._part_value.clear()
            elif kind == "headers_finished":
                await self._part_start()
            elif kind == "part_end":
                self._part_end()
            elif kind == "end":
                self.ended = True

    async def _part_start(self) -> None:
        disposition = self._headers.get(b"content-disposition", b"")
        _, params = parse_options_header(disposition)
        name = params.get(b"name", b"").decode("utf-8", errors="replace")
        self._part_name = name
        self._part_is_file = name == "file"
        if self._part_is_file:
            if self.file_seen:
                raise validation([field_error("body.file", "send exactly one file part", "duplicate")])
            self.file_seen = True
            self.file_name = _part_filename(disposition, params)
            self.file_content_type = _content_type(
                self._headers.get(b"content-type", b"").decode("latin-1"), "body.file"
            )
            if self.on_file is not None:
                await self.on_file(dict(self.fields))
            self.upload = self.store.begin(self.limit)
        elif b"filename" in params or b"filename*" in disposition.lower():
            raise validation(
                [field_error(f"body.{name}", "send the document as the part named 'file'", "unexpected_file")]
            )
        elif name not in self.allowed:
            raise validation(
                [field_error(f"body.{name}", "Extra inputs are not permitted", "extra_forbidden")]
            )
        elif name in self.fields:
            raise validation([field_error(f"body.{name}", "the field is sent twice", "duplicate")])

    async def _part_data(self, data: bytes) -> None:
        if self._part_is_file:
            assert self.upload is not None
            await self.upload.write(data)
            return
        self._part_value += data
        if len(self._part_value) > FIELD_MAX_BYTES:
            raise validation(
                [field_error(f"body.{self._part_name}", f"longer than {FIELD_MAX_BYTES} bytes", "too_long")]
            )

    def _part_end(self) -> None:
        if self._part_is_file:
            return
        try:
            self.fields[self._part_name] = bytes(self._part_value).decode("utf-8")
        except UnicodeDecodeError:
            raise validation(
                [field_error(f"body.{self._part_name}", "not valid UTF-8", "unicode_decode")]
            ) from None


async def _receive(
    request: Request,
    store: BlobStore,
    limit: int,
    *,
    allowed: frozenset[str],
    on_file: Callable[[dict[str, str]], Awaitable[None]] | None = None,
) -> Received:
    """Stream the body into the blob store; records its hash for Idempotency-Key."""
    try:
        if _is_multipart(request):
            _check_content_length(request, limit, MULTIPART_OVERHEAD)
            _, params = parse_options_header(request.headers["content-type"])
            boundary = params.get(b"boundary")
            if not boundary:
                raise Problem(400, "A multipart/form-data Content-Type needs a boundary parameter.")
            reader = _MultipartReader(boundary, store, limit, allowed, on_file)
            received = await reader.read(request)
        else:
            _check_content_length(request, limit, 0)
            content_type = _content_type(request.headers.get("content-type"), "header.content-type")
            blob = await store.write_stream(request.stream(), limit)
            received = Received(blob, content_type, None, blob.sha256)
    except ClientDisconnect:
        raise Problem(
            400, "The client disconnected before the upload finished; nothing was stored."
        ) from None
    setattr(request.state, BODY_SHA256, received.body_sha256)
    return received


def _pick(fields: Mapping[str, str], query: Mapping[str, str | None], key: str) -> tuple[str | None, str]:
    if key in fields:
        return fields[key], "body"
    value = query.get(key)
    return value, ("query" if value is not None else "body")


@dataclass(frozen=True)
class _Meta:
    matter_id: uuid.UUID | None
    name: str | None
    folder_path: str
    source: str


def _resolve(
    fields: Mapping[str, str],
    query: Mapping[str, str | None],
    filename: str | None,
    *,
    complete: bool,
    multipart: bool,
) -> _Meta:
    """The new document's fields (form fields win over query parameters); 422 naming each bad one."""
    errors: list[dict[str, str]] = []
    default_source = "body" if multipart else "query"
    raw_matter, matter_src = _pick(fields, query, "matter_id")
    matter_id: uuid.UUID | None = None
    if raw_matter is None:
        if complete:
            errors.append(field_error(f"{default_source}.matter_id", "Field required", "missing"))
    else:
        try:
            matter_id = uuid.UUID(raw_matter.strip())
        except ValueError:
            errors.append(field_error(f"{matter_src}.matter_id", "not a valid UUID", "uuid_parsing"))
    raw_folder, folder_src = _pick(fields, query, "folder_path")
    folder = ""
    if raw_folder is not None:
        try:
            folder = normalise_folder(raw_folder)
        except ValueError as exc:
            errors.append(field_error(f"{folder_src}.folder_path", str(exc), "invalid_path"))
    raw_name, name_src = _pick(fields, query, "name")
    name_field = f"{name_src}.name"
    name: str | None = None
    if raw_name is None and filename is not None:
        raw_name, name_field = filename, ("body.file" if multipart else "query.filename")
    if raw_name is None:
        if complete:
            errors.append(
                field_error(f"{default_source}.name", "give a name, or a file with a filename", "missing")
            )
    else:
        try:
            name = check_name(raw_name)
        except ValueError as exc:
            errors.append(field_error(name_field, str(exc), "invalid_name"))
    if errors:
        raise validation(errors)
    return _Meta(matter_id, name, folder, matter_src)


async def _read(ctx: AppContext, work: Callable[[Session], T]) -> T:
    """A short read transaction of its own (never the request's writer session)."""

    def run() -> T:
        with unit_of_work(ctx.db.reader) as session:
            return work(session)

    return await run_in_threadpool(run)


async def _save(
    session: Session, ctx: AppContext, store: BlobStore, blob: BlobInfo, work: Callable[[], T]
) -> T:
    """Run the database part; if it fails, roll back and remove the blob if this upload added it."""
    try:
        return await run_in_threadpool(work)
    except Exception:
        if blob.created:
            await run_in_threadpool(_discard, session, ctx, store, blob.sha256)
        raise


def _discard(session: Session, ctx: AppContext, store: BlobStore, sha256: str) -> None:
    session.rollback()  # release the write lock before collecting in a transaction of its own
    try:
        service.collect_blobs(ctx.db.writer, store, [sha256])
    except Exception:
        log.exception("could not remove the blob of a failed upload; the periodic purge will")


# -- endpoints ------------------------------------------------------------------------------------------


@router.get("", dependencies=READ)
def list_documents(
    session: SessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
    order: Annotated[str, Query(description=order_options(*repository.ORDER_COLUMNS))] = "name",
    matter_id: uuid.UUID | None = None,
    folder_path: Annotated[
        str | None, Query(max_length=FOLDER_MAX, description="Exactly this folder; `` for the top level.")
    ] = None,
    recursive: Annotated[bool, Query(description="With folder_path: include its subfolders.")] = False,
    q: Annotated[str | None, Query(max_length=200, description="Name contains (case-insensitive).")] = None,
    updated_since: UpdatedSinceQuery = None,
    include_deleted: Annotated[bool, Query(description="Include documents in the trash.")] = False,
    deleted_only: Annotated[bool, Query(description="Only documents in the trash.")] = False,
) -> Page[DocumentOut]:
    folder = None
    if folder_path is not None:
        try:
            folder = normalise_folder(folder_path)
        except ValueError as exc:
            raise validation([field_error("query.folder_path", str(exc), "invalid_path")]) from None
    stmt = repository.list_query(
        matter_id=matter_id,
        folder_path=folder,
        recursive=recursive,
        q=q,
        updated_since=updated_since,
        include_deleted=include_deleted,
        deleted_only=deleted_only,
    )
    page = paginate(
        session,
        stmt,
        columns=repository.ORDER_COLUMNS,
        id_column=Document.id,
        order=order,
        limit=limit,
        cursor=cursor,
    )
    return Page(data=[DocumentOut.of(d) for d in page.rows], next_cursor=page.next_cursor)


@router.post(
    "",
    dependencies=WRITE,
    status_code=201,
    openapi_extra=_CREATE_OPENAPI,
    responses=_UPLOAD_RESPONSES,
)
async def create_document(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    ctx: ContextDep,
    matter_id: MatterIdQuery = None,
    name: NameQuery = None,
    folder_path: FolderQuery = None,
    filename: FilenameQuery = None,
) -> DocumentOut:
    """Create a document with its first version, from a multipart form or a raw body (see the request body)."""
    store = service.blob_store(ctx.settings)
    limit = ctx.settings.max_upload_bytes
    multipart = _is_multipart(request)
    query = {"matter_id": str(matter_id) if matter_id else None, "name": name, "folder_path": folder_path}
    raw_filename = clean_filename(filename)

    async def precheck(fields: Mapping[str, str], complete: bool) -> None:
        meta = _resolve(fields, query, raw_filename, complete=complete, multipart=multipart)
        if meta.matter_id is not None:
            checked = meta.matter_id
            await _read(ctx, lambda s: service.check_matter(s, checked, meta.source))

    if not multipart:
        _check_content_length(request, limit, 0)
        await precheck({}, True)

    async def on_file(fields: dict[str, str]) -> None:
        await precheck(fields, False)

    received = await _receive(request, store, limit, allowed=DOCUMENT_FIELDS, on_file=on_file)
    file_name = received.filename or raw_filename

    def work() -> DocumentOut:
        meta = _resolve(received.fields, query, file_name, complete=True, multipart=multipart)
        assert meta.matter_id is not None
        assert meta.name is not None
        new = service.NewDocument(meta.matter_id, meta.name, meta.folder_path, meta.source)
        content = service.NewContent(received.blob, received.content_type, file_name or meta.name)
        return DocumentOut.of(service.create(session, store, principal, new, content))

    out = await _save(session, ctx, store, received.blob, work)
    created(request, response, out.etag, f"/api/v1/documents/{out.id}")
    return out


@router.get("/{document_id}", dependencies=READ, response_model=DocumentOut)
def get_document(
    request: Request, response: Response, session: SessionDep, document_id: uuid.UUID
) -> DocumentOut | Response:
    document = service.get_or_404(session, document_id)
    etag = etag_for(document.id, document.version)
    return conditional(request, response, etag) or DocumentOut.of(document)


@router.patch("/{document_id}", dependencies=WRITE)
def update_document(
    request: Request, response: Response, session: SessionDep, document_id: uuid.UUID, body: DocumentUpdate
) -> DocumentOut:
    """Rename it or move it to another folder of its matter."""
    document = service.get_or_404(session, document_id)
    check_if_match(request, etag_for(document.id, document.version))
    out = DocumentOut.of(service.update(session, document, body))
    response.headers["ETag"] = out.etag
    return out


@router.delete("/{document_id}", dependencies=WRITE)
def delete_document(
    request: Request, response: Response, session: SessionDep, document_id: uuid.UUID
) -> DocumentOut:
    """Move the document to the trash: hidden from lists and downloads until restored or purged."""
    document = service.get_or_404(session, document_id)
    check_if_match(request, etag_for(document.id, document.version))
    out = DocumentOut.of(service.trash(session, document))
    response.headers["ETag"] = out.etag
    return out


@router.post("/{document_id}/restore", dependencies=WRITE)
def restore_document(
    request: Request, response: Response, session: SessionDep, document_id: uuid.UUID
) -> DocumentOut:
    """Bring the document back from the trash."""
    document = service.get_or_404(session, document_id)
    check_if_match(request, etag_for(document.id, document.version))
    out = DocumentOut.of(service.restore(session, document))
    response.headers["ETag"] = out.etag
    return out


@router.delete("/{document_id}/purge", dependencies=ADMIN, status_code=204, response_class=Response)
def purge_document(
    request: Request, session: SessionDep, ctx: ContextDep, document_id: uuid.UUID
) -> Response:
    """Permanently delete a document in the trash, with all its versions and their bytes (admin only).

    Its history stays readable, ending with `document.purged`.
    """
    document = service.get_or_404(session, document_id)
    check_if_match(request, etag_for(document.id, document.version))
    shas = service.purge(session, document)
    service.remove_blobs_after_commit(session, ctx.db.writer, service.blob_store(ctx.settings), shas)
    return Response(status_code=204)


@router.get("/{document_id}/versions", dependencies=READ)
def list_document_versions(session: SessionDep, document_id: uuid.UUID) -> VersionList:
    document = service.get_or_404(session, document_id)
    return VersionList(data=[VersionOut.of(v) for v in document.versions])


@router.post(
    "/{document_id}/versions",
    dependencies=WRITE,
    status_code=201,
    openapi_extra=_VERSION_OPENAPI,
    responses=_UPLOAD_RESPONSES,
)
async def add_document_version(
    request: Request,
    response: Response,
    session: SessionDep,
    principal: PrincipalDep,
    ctx: ContextDep,
    document_id: uuid.UUID,
    filename: FilenameQuery = None,
) -> DocumentOut:
    """Upload a new version (N+1) of the document; If-Match is honoured.

    Answers 201 with the document (now showing the new version as `latest_version`); Location is the
    new version's content.
    """
    store = service.blob_store(ctx.settings)

    def precheck(s: Session) -> None:
        document = service.get_or_404(s, document_id)
        service.ensure_writable(document)
        check_if_match(request, etag_for(document.id, document.version))

    await _read(ctx, precheck)
    received = await _receive(request, store, ctx.settings.max_upload_bytes, allowed=frozenset())

    def work() -> DocumentOut:
        document = service.get_or_404(session, document_id, for_update=True)
        check_if_match(request, etag_for(document.id, document.version))
        content = service.NewContent(
            received.blob,
            received.content_type,
            received.filename or clean_filename(filename) or document.name,
        )
        return DocumentOut.of(service.add_version(session, store, principal, document, content))

    out = await _save(session, ctx, store, received.blob, work)
    number = out.latest_version.number
    created(request, response, out.etag, f"/api/v1/documents/{out.id}/versions/{number}/content")
    return out


def _disposition(filename: str) -> str:
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _content(
    request: Request, ctx: AppContext, document: Document, number: int, include_deleted: bool
) -> Response:
    if document.deleted_at is not None and not include_deleted:
        raise Problem(
            404,
            f"Document {document.id} is in the trash; add ?include_deleted=true to download it anyway.",
            slug="not-found",
        )
    version: DocumentVersion | None = next((v for v in document.versions if v.version_number == number), None)
    if version is None:
        raise Problem(
            404, f"Document {document.id} has no version {number}; its latest is {document.latest_version}."
        )
    digest = base64.b64encode(bytes.fromhex(version.sha256)).decode()
    headers = {
        "ETag": f'"{version.sha256}"',
        "Repr-Digest": f"sha-256=:{digest}:",
        "Digest": f"sha-256={digest}",
        "Last-Modified": format_datetime(version.created_at.astimezone(UTC), usegmt=True),
        "Cache-Control": "private, no-cache",
        # Uploaded bytes are served as the uploader labelled them: never sniffed, never run as a page.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    path = service.blob_store(ctx.settings).path(version.sha256)
    if not path.is_file():
        log.error("blob %s of document %s version %d is missing", version.sha256, document.id, number)
        raise Problem(500, "The stored bytes of this version are missing; the incident has been logged.")
    headers["Content-Type"] = version.content_type
    headers["Content-Disposition"] = _disposition(version.filename)
    return FileResponse(path, headers=headers)


@router.get(
    "/{document_id}/content", dependencies=READ, response_class=Response, responses=_CONTENT_RESPONSES
)
def download_document(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    document_id: uuid.UUID,
    include_deleted: Annotated[bool, Query(description="Allow downloading a document in the trash.")] = False,
) -> Response:
    """The latest version's bytes, streamed (Range requests supported)."""
    document = service.get_or_404(session, document_id)
    return _content(request, ctx, document, document.latest_version, include_deleted)


@router.get(
    "/{document_id}/versions/{number}/content",
    dependencies=READ,
    response_class=Response,
    responses=_CONTENT_RESPONSES,
)
def download_document_version(
    request: Request,
    session: SessionDep,
    ctx: ContextDep,
    document_id: uuid.UUID,
    number: int,
    include_deleted: Annotated[bool, Query(description="Allow downloading a document in the trash.")] = False,
) -> Response:
    """One version's bytes, streamed (Range requests supported)."""
    document = service.get_or_404(session, document_id)
    return _content(request, ctx, document, number, include_deleted)


@router.get("/{document_id}/history", dependencies=READ)
def document_history(
    session: SessionDep, document_id: uuid.UUID, after: AfterQuery = 0, limit: LimitQuery = DEFAULT_LIMIT
) -> EventPage:
    """The document's business events, oldest first; still readable after the document is purged."""
    page = history_page(session, service.ENTITY, document_id, after, limit)
    if not page.data and after == 0 and repository.get(session, document_id) is None:
        raise not_found("document", document_id)
    return page

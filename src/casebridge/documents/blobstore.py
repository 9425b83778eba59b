"""Content-addressed blob storage: the bytes of document versions, streamed in and out of files.

Layout under the data dir: ``blobs/ab/cd/<sha256>`` for stored bytes, ``tmp/upload-*.part`` for uploads
in progress. An upload streams to a temp file in fixed-size writes while it is hashed and counted (never
held in memory), is fsynced, and is renamed into place; identical bytes are stored once.

Uploads and garbage collection agree through the database, so a blob is never removed while a
transaction is about to reference it:

* the transaction that adds a version calls :meth:`BlobStore.claim` first: it takes the blob's lock
  (a PostgreSQL advisory lock held until commit; on SQLite the writer transaction's database lock) and
  checks the file is still there (409 "send it again" if a concurrent purge removed it);
* :meth:`BlobStore.delete_unreferenced` takes the same lock per blob, re-checks that no version refers
  to it, and only then unlinks it. It must run in a *writer* session (``Database.writer``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import AsyncIterable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from anyio import to_thread
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from casebridge.kit.problems import Problem
from casebridge.models import DocumentVersion

log = logging.getLogger("casebridge.documents.blobs")

# Bytes go to disk in writes of this size (the last one shorter); an upload holds at most about this
# much plus one network chunk in memory.
CHUNK_SIZE = 256 * 1024
TEMP_PREFIX = "upload-"
TEMP_SUFFIX = ".part"
# Two-key PostgreSQL advisory locks: this class id ("CBBL") and 32 bits of the blob's hash.
_LOCK_CLASS = 0x4342424C
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_REFERENCE_BATCH = 500


@dataclass(frozen=True)
class BlobInfo:
    sha256: str
    size: int
    created: bool  # False when identical bytes were already stored


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        f"The upload is larger than the limit of {limit} bytes (CASEBRIDGE_MAX_UPLOAD_BYTES); "
        "nothing was stored. Send a smaller file, or ask an administrator to raise the limit.",
        extra={"limit_bytes": limit},
    )


def _lock_key(sha256: str) -> int:
    return int(sha256[:8], 16) - 2**31


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """One upload's temp file: blocking calls, to be run off the event loop (see :class:`BlobUpload`)."""

    def __init__(self, store: BlobStore, limit: int) -> None:
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=store.tmp_dir)
        self._store = store
        self._limit = limit
        self._file = os.fdopen(fd, "wb", buffering=0)
        self.temp_path = Path(name)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if self.size + len(data) > self._limit:
            self.abort()
            raise too_large(self._limit)
        self._hash.update(data)
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]
        self.size += len(data)

    def commit(self) -> BlobInfo:
        """fsync, then move into place (or drop the copy when the same bytes are already stored)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sha256 = self._hash.hexdigest()
        final = self._store.path(sha256)
        if final.exists():
            try:
                # A fresh mtime keeps the blob out of garbage collection's grace window until the
                # transaction that references it has committed.
                os.utime(final)
            except FileNotFoundError:
                pass  # collected just now: store ours instead
            else:
                self.temp_path.unlink(missing_ok=True)
                return BlobInfo(sha256, self.size, created=False)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.temp_path, final)
        _fsync_dir(final.parent)
        return BlobInfo(sha256, self.size, created=True)

    def abort(self) -> None:
        with suppress(OSError):
            self._file.close()
        self.temp_path.unlink(missing_ok=True)


class BlobUpload:
    """Feed an upload chunk by chunk from the event loop; disk writes and hashing run on a worker thread.

    The size limit is checked on every chunk: the moment it is crossed the temp file is removed and a
    413 :class:`Problem` is raised. Any other failure (a disconnect, a parse error) should call
    :meth:`abort`, which is synchronous so that it also runs while the task is being cancelled.
    """

    def __init__(self, store: BlobStore, limit: int) -> None:
        self._store = store
        self.limit = limit
        self.size = 0
        self._buffer = bytearray()
        self._writer: BlobWriter | None = None
        self._done = False

    async def write(self, data: bytes) -> None:
        if self._done:
            raise RuntimeError("write after the upload finished")
        self.size += len(data)
        if self.size > self.limit:
            self.abort()
            raise too_large(self.limit)
        self._buffer += data
        if len(self._buffer) >= CHUNK_SIZE:
            await self._flush(final=False)

    async def _flush(self, *, final: bool) -> None:
        pieces = []
        while len(self._buffer) >= CHUNK_SIZE or (final and self._buffer):
            pieces.append(bytes(self._buffer[:CHUNK_SIZE]))
            del self._buffer[:CHUNK_SIZE]
        if self._writer is None:
            self._writer = await to_thread.run_sync(BlobWriter, self._store, self.limit)
        writer = self._writer

        def write_all() -> None:
            for piece in pieces:
                writer.write(piece)

        await to_thread.run_sync(write_all)

    async def finish(self) -> BlobInfo:
        try:
            await self._flush(final=True)
            assert self._writer is not None
            info = await to_thread.run_sync(self._writer.commit)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return info

    def abort(self) -> None:
        self._done = True
        self._buffer.clear()
        if self._writer is not None:
            self._writer.abort()


class BlobStore:
    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = Path(tmp_dir)

    def path(self, sha256: str) -> Path:
        if not _SHA256_HEX.match(sha256):
            raise ValueError(f"not a lowercase sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def begin(self, limit: int) -> BlobUpload:
        return BlobUpload(self, limit)

    async def write_stream(self, chunks: AsyncIterable[bytes], limit: int) -> BlobInfo:
        """Store a stream of bytes; 413 :class:`Problem` (and nothing stored) once it exceeds ``limit``."""
        upload = self.begin(limit)
        try:
            async for chunk in chunks:
                await upload.write(chunk)
        except BaseException:
            upload.abort()
            raise
        return await upload.finish()

    # -- the database side ------------------------------------------------------------------------

    def claim(self, session: Session, sha256: str) -> None:
        """In the transaction that will reference ``sha256``: lock it until commit, check it is stored."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(:c, :k)"), {"c": _LOCK_CLASS, "k": _lock_key(sha256)}
            )
        else:
            # SQLite: the writer transaction (BEGIN IMMEDIATE, taken by the first statement) holds the
            # database's write lock until commit, which excludes a concurrent collection.
            session.execute(text("SELECT 1"))
        if not self.exists(sha256):
            raise Problem(
                409,
                "The uploaded bytes were removed by a concurrent purge before the document could be "
                "saved; send the upload again.",
                slug="conflict",
            )

    @contextmanager
    def _collect_lock(self, session: Session, sha256: str) -> Iterator[None]:
        if session.get_bind().dialect.name != "postgresql":
            session.execute(text("SELECT 1"))  # see claim(): the writer transaction is the lock
            yield
            return
        params = {"c": _LOCK_CLASS, "k": _lock_key(sha256)}
        session.execute(text("SELECT pg_advisory_lock(:c, :k)"), params)
        try:
            yield
        finally:
            session.execute(text("SELECT pg_advisory_unlock(:c, :k)"), params)

    def _referenced(self, session: Session, shas: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(shas), _REFERENCE_BATCH):
            batch = shas[i : i + _REFERENCE_BATCH]
            found.update(
                session.scalars(
                    select(DocumentVersion.sha256).where(DocumentVersion.sha256.in_(batch)).distinct()
                )
            )
        return found

    def _stored(self, older_than: datetime | None) -> Iterator[str]:
        cutoff = older_than.timestamp() if older_than is not None else None
        if not self.root.is_dir():
            return
        for first in sorted(self.root.iterdir()):
            if not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                if not second.is_dir():
                    continue
                for blob in second.iterdir():
                    if not _SHA256_HEX.match(blob.name):
                        continue
                    try:
                        mtime = blob.stat().st_mtime
                    except FileNotFoundError:
                        continue
                    if cutoff is None or mtime < cutoff:
                        yield blob.name

    def delete_unreferenced(
        self,
        session: Session,
        older_than: datetime | None,
        *,
        candidates: Iterable[str] | None = None,
    ) -> int:
        """Remove blobs no version refers to; returns how many were removed.

        ``candidates`` limits the check to those hashes (else every stored blob); ``older_than`` spares
        blobs written or re-used since then (None: no grace). ``session`` must be a writer session.
        """
        shas = sorted(set(candidates)) if candidates is not None else list(self._stored(older_than))
        cutoff = older_than.timestamp() if older_than is not None else None
        unreferenced = sorted(set(shas) - self._referenced(session, shas))
        removed = 0
        for sha256 in unreferenced:
            path = self.path(sha256)
            with self._collect_lock(session, sha256):
                if self._referenced(session, [sha256]):
                    continue
                try:
                    if cutoff is not None and path.stat().st_mtime >= cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
            removed += 1
            for parent in (path.parent, path.parent.parent):
                with suppress(OSError):
                    parent.rmdir()  # only succeeds when empty
        if removed:
            log.info("removed %d unreferenced blob(s)", removed)
        return removed

    def sweep_temp(self, older_than: datetime) -> int:
        """Remove temp files of uploads abandoned before ``older_than`` (a crash, a killed worker)."""
        if not self.tmp_dir.is_dir():
            return 0
        cutoff = older_than.timestamp()
        removed = 0
        for path in self.tmp_dir.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

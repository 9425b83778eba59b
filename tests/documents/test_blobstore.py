"""The blob store on its own: streaming writes, limits, dedup, garbage collection, temp sweeping."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from casebridge.documents.blobstore import CHUNK_SIZE, BlobInfo, BlobStore
from casebridge.kit.problems import Problem
from casebridge.models import Base


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs", tmp_path / "tmp")


async def _chunks(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _write(store: BlobStore, parts: Iterable[bytes], limit: int = 10 * 1024 * 1024) -> BlobInfo:
    return asyncio.run(store.write_stream(_chunks(parts), limit))


def _blob_files(store: BlobStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


def _temp_files(store: BlobStore) -> list[Path]:
    return sorted(store.tmp_dir.glob("*")) if store.tmp_dir.exists() else []


def test_streams_to_a_content_addressed_path(store: BlobStore) -> None:
    # Odd-sized pieces that straddle the write chunk size.
    parts = [os.urandom(n) for n in (1, CHUNK_SIZE - 1, CHUNK_SIZE + 7, 3, 2 * CHUNK_SIZE, 0, 12345)]
    data = b"".join(parts)
    info = _write(store, parts)
    sha = hashlib.sha256(data).hexdigest()
    assert info == BlobInfo(sha256=sha, size=len(data), created=True)
    assert store.path(sha) == store.root / sha[:2] / sha[2:4] / sha
    assert store.path(sha).read_bytes() == data
    with store.open(sha) as fh:
        assert fh.read(5) == data[:5]
    assert _temp_files(store) == []


def test_identical_bytes_are_stored_once(store: BlobStore) -> None:
    first = _write(store, [b"same bytes"])
    second = _write(store, [b"same ", b"bytes"])
    assert first.sha256 == second.sha256
    assert (first.created, second.created) == (True, False)
    assert _blob_files(store) == [store.path(first.sha256)]
    assert _temp_files(store) == []


def test_empty_upload_is_a_blob(store: BlobStore) -> None:
    info = _write(store, [])
    assert info.size == 0
    assert info.sha256 == hashlib.sha256(b"").hexdigest()
    assert store.exists(info.sha256)


def test_limit_stops_the_upload_and_leaves_nothing(store: BlobStore) -> None:
    limit = 3 * CHUNK_SIZE
    with pytest.raises(Problem) as caught:
        _write(store, [b"x" * CHUNK_SIZE] * 10, limit=limit)
    assert caught.value.status == 413
    assert f"limit of {limit} bytes" in caught.value.detail
    assert "CASEBRIDGE_MAX_UPLOAD_BYTES" in caught.value.detail
    assert _blob_files(store) == []
    assert _temp_files(store) == []
    # exactly at the limit is fine
    assert _write(store, [b"y" * limit], limit=limit).size == limit


def test_failure_mid_stream_removes_the_temp_file(store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * (CHUNK_SIZE * 2)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(store.write_stream(broken(), 10 * CHUNK_SIZE))
    assert _temp_files(store) == []
    assert _blob_files(store) == []


def test_path_only_takes_sha256_hex(store: BlobStore) -> None:
    for bad in ("../../etc/passwd", "A" * 64, "abc", "g" * 64):
        with pytest.raises(ValueError, match="sha256"):
            store.path(bad)


@pytest.fixture
def session(tmp_path: Path) -> Iterable[Session]:
    engine = create_engine(f"sqlite:///{tmp_path / 'gc.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def test_delete_unreferenced_respects_grace_and_candidates(store: BlobStore, session: Session) -> None:
    old = _write(store, [b"old orphan"])
    new = _write(store, [b"new orphan"])
    picked = _write(store, [b"picked"])
    an_hour_ago = time.time() - 3600
    for info in (old, picked):
        os.utime(store.path(info.sha256), (an_hour_ago, an_hour_ago))
    cutoff = datetime.now(UTC) - timedelta(minutes=30)

    assert store.delete_unreferenced(session, cutoff, candidates=[picked.sha256]) == 1
    assert not store.exists(picked.sha256)
    assert store.exists(old.sha256)

    assert store.delete_unreferenced(session, cutoff) == 1
    assert not store.exists(old.sha256)
    assert store.exists(new.sha256)  # younger than the grace period

    assert store.delete_unreferenced(session, None) == 1
    assert _blob_files(store) == []
    assert list(store.root.iterdir()) == []  # empty fan-out directories are pruned too


def test_claim_refuses_a_blob_that_is_gone(store: BlobStore, session: Session) -> None:
    info = _write(store, [b"claimed"])
    store.claim(session, info.sha256)
    store.path(info.sha256).unlink()
    with pytest.raises(Problem) as caught:
        store.claim(session, info.sha256)
    assert caught.value.status == 409


def test_sweep_temp_removes_only_old_temp_files(store: BlobStore) -> None:
    store.tmp_dir.mkdir(parents=True)
    stale = store.tmp_dir / "upload-stale.part"
    fresh = store.tmp_dir / "upload-fresh.part"
    other = store.tmp_dir / "not-ours.txt"
    for p in (stale, fresh, other):
        p.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    for p in (stale, other):
        os.utime(p, (two_hours_ago, two_hours_ago))
    assert store.sweep_temp(datetime.now(UTC) - timedelta(hours=1)) == 1
    assert sorted(p.name for p in store.tmp_dir.iterdir()) == ["not-ours.txt", "upload-fresh.part"]

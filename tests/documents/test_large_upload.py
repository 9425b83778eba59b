"""A 200 MiB upload (raw and multipart) and download stream through a server with bounded memory.

The server runs in its own process (uvicorn + ``create_app``, SQLite, limit 300 MiB) so that its
resident set size can be read from ``/proc/<pid>/status`` (VmRSS), sampled every 10 ms in a thread
while the body streams. The bound: **peak RSS growth over the warmed-up baseline stays under 64 MiB**
for a 200 MiB upload, raw or multipart (and for its download) — well under the file's size, so the file is never held in
memory. (Expected growth is a few MiB: 64 KiB socket reads, 256 KiB disk writes.) Time is not asserted.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from casebridge.auth.service import create_token
from casebridge.db import migrate
from casebridge.db.session import Database, unit_of_work
from casebridge.kit.context import Role

MiB = 1024 * 1024
FILE_SIZE = 200 * MiB
RSS_GROWTH_BOUND = 64 * MiB

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read RSS"),
]

SERVER = textwrap.dedent(
    """
    import sys
    import uvicorn
    from casebridge.app import create_app
    from casebridge.config import Settings

    url, data_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    app = create_app(Settings(database_url=url, data_dir=data_dir, max_upload_bytes=300 * 1024 * 1024))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    """
)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = _rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss(self.pid))
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss(self.pid))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int, str]]:
    """(base url, server pid, admin token) for a fresh server process on SQLite."""
    url = f"sqlite:///{tmp_path / 'large.db'}"
    db = Database.from_url(url)
    migrate.upgrade(db.engine)
    with unit_of_work(db.writer) as session:
        token = create_token(session, name="large", role=Role.ADMIN).secret
    db.dispose()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, url, str(tmp_path / "data"), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        yield base, proc.pid, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def test_200_mib_upload_and_download_stream_with_bounded_memory(server: tuple[str, int, str]) -> None:
    base, pid, token = server
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300) as api:
        contact = api.post("/api/v1/contacts", json={"kind": "company", "company_name": "Big Files Ltd"})
        matter = api.post("/api/v1/matters", json={"title": "Large", "client_id": contact.json()["id"]})
        assert matter.status_code == 201, matter.text
        matter_id = matter.json()["id"]

        # Warm up every code path the big transfer uses, so the baseline includes imports and pools.
        warm = api.post(
            "/api/v1/documents",
            params={"matter_id": matter_id, "name": "warm.bin"},
            content=os.urandom(4 * MiB),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert warm.status_code == 201, warm.text
        assert len(api.get(f"/api/v1/documents/{warm.json()['id']}/content").content) == 4 * MiB

        block = os.urandom(MiB)
        expected = hashlib.sha256()

        def body() -> Iterator[bytes]:
            for i in range(FILE_SIZE // MiB):
                chunk = i.to_bytes(8, "big") + block[8:]  # every MiB different, none kept
                expected.update(chunk)
                yield chunk

        baseline = _rss(pid)
        with PeakRss(pid) as upload_rss:
            r = api.post(
                "/api/v1/documents",
                params={"matter_id": matter_id, "name": "big.bin"},
                content=body(),
                headers={"Content-Type": "application/octet-stream"},
            )
        assert r.status_code == 201, r.text
        doc = r.json()
        assert doc["latest_version"]["size_bytes"] == FILE_SIZE
        assert doc["latest_version"]["sha256"] == expected.hexdigest()
        upload_growth = upload_rss.peak - baseline

        baseline = _rss(pid)
        got = hashlib.sha256()
        size = 0
        with (
            PeakRss(pid) as download_rss,
            api.stream("GET", f"/api/v1/documents/{doc['id']}/content") as resp,
        ):
            assert resp.status_code == 200
            assert resp.headers["etag"] == f'"{expected.hexdigest()}"'
            for chunk in resp.iter_bytes():
                got.update(chunk)
                size += len(chunk)
        assert size == FILE_SIZE
        assert got.hexdigest() == expected.hexdigest()
        download_growth = download_rss.peak - baseline

        # The same file as multipart/form-data: parsed as it streams, the file part straight to disk.
        boundary = "large-upload-boundary"

        def form() -> Iterator[bytes]:
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="matter_id"\r\n\r\n{matter_id}\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big-form.bin"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            for i in range(FILE_SIZE // MiB):
                yield i.to_bytes(8, "big") + block[8:]
            yield f"\r\n--{boundary}--\r\n".encode()

        baseline = _rss(pid)
        with PeakRss(pid) as multipart_rss:
            r = api.post(
                "/api/v1/documents",
                content=form(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
        assert r.status_code == 201, r.text
        assert r.json()["latest_version"]["sha256"] == expected.hexdigest()
        assert r.json()["name"] == "big-form.bin"
        multipart_growth = multipart_rss.peak - baseline

    print(  # noqa: T201 - the measurement is the point of this test; shown with -s
        f"\nserver RSS growth: raw upload {upload_growth / MiB:.1f} MiB, multipart upload "
        f"{multipart_growth / MiB:.1f} MiB, download {download_growth / MiB:.1f} MiB "
        f"(bound {RSS_GROWTH_BOUND / MiB:.0f} MiB, file {FILE_SIZE / MiB:.0f} MiB)"
    )
    assert upload_growth < RSS_GROWTH_BOUND
    assert multipart_growth < RSS_GROWTH_BOUND
    assert download_growth < RSS_GROWTH_BOUND

"""kill -9 between Clio's 201 and our commit: a `casebridge worker` process dies right after creating the
contact in Clio and before recording it; another worker finishes the job without creating it twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.factories import create_contact, create_matter
from tests.sync.conftest import Connected

ROOT = Path(__file__).resolve().parents[2]
CASEBRIDGE = str(Path(sys.executable).parent / "casebridge")


def _crashing_worker(connected: Connected, log: Path) -> subprocess.Popen[bytes]:
    settings = connected.backend.settings
    env = {
        **os.environ,
        "CASEBRIDGE_DATABASE_URL": connected.backend.url,
        "CASEBRIDGE_DATA_DIR": str(settings.data_dir),
        "CASEBRIDGE_PUBLIC_URL": connected.server.url,
        "CASEBRIDGE_TEST_CRASH_AT": "sync.after_remote_create",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    with log.open("ab") as sink:
        return subprocess.Popen(
            [CASEBRIDGE, "worker", "--concurrency", "1", "--lease", "1"],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def test_a_worker_killed_after_the_remote_create_leaves_no_duplicate(
    connected: Connected, tmp_path: Path
) -> None:
    connected.settle()
    connected.workers.stop()
    contact = create_contact(connected.api, first_name="Crash", last_name="Between")
    log = tmp_path / "worker.log"
    proc = _crashing_worker(connected, log)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    # Clio has the contact; we never recorded it.
    assert [c["last_name"] for c in connected.clio.records("contacts")] == ["Between"]
    status = connected.status("contact", contact["id"])
    assert status["link"]["remote_id"] is None
    assert status["link"]["pending_create"] is True

    connected.workers.start()  # its lease expires; this worker runs the job again
    remote_id = connected.remote_id("contact", contact["id"], timeout=30)
    connected.settle()
    assert [(c["id"], c["last_name"]) for c in connected.clio.records("contacts")] == [(remote_id, "Between")]
    journal = connected.status("contact", contact["id"])["journal"]
    created = [j for j in journal if j["action"] == "create_remote"]
    assert len(created) == 1
    assert "found" in created[0]["summary"]  # adopted, not created again
    # It syncs on as usual.
    r = connected.api.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "Survived"})
    assert r.status_code == 200
    connected.wait(
        lambda: (
            connected.clio.user.get(f"/contacts/{remote_id}", params={"fields": "first_name"}).json()["data"][
                "first_name"
            ]
            == "Survived"
        ),
        what="the next edit",
    )


def test_a_matter_survives_the_same_crash(connected: Connected, tmp_path: Path) -> None:
    client = create_contact(connected.api, first_name="Kept", last_name="Client")
    connected.remote_id("contact", client["id"])
    connected.settle()
    connected.workers.stop()
    matter = create_matter(connected.api, client_id=client["id"], title="Crash-tested purchase")
    proc = _crashing_worker(connected, tmp_path / "worker.log")
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    time.sleep(1.5)  # the dead worker's lease runs out
    connected.workers.start()
    remote_id = connected.remote_id("matter", matter["id"], timeout=30)
    connected.settle()
    matters = connected.clio.records("matters")
    assert [(m["id"], m["description"]) for m in matters] == [(remote_id, "Crash-tested purchase")]
    assert connected.api.get(f"/api/v1/matters/{matter['id']}").json()["display_number"] == "00001-Client"

"""kill -9 between Clio's 201 and our commit: a `casebridge worker` process dies right after creating the
contact in Clio and before recording it; another worker finishes the job without creating it twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
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


def _crash_after_remote_create(connected: Connected, tmp_path: Path) -> None:
    """Run a worker that kills itself (SIGKILL) right after Clio's 201, before recording it."""
    log = tmp_path / "worker.log"
    proc = _crashing_worker(connected, log)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]


def test_a_worker_killed_after_the_remote_create_leaves_no_duplicate(
    connected: Connected, tmp_path: Path
) -> None:
    connected.settle()
    connected.workers.stop()
    contact = create_contact(connected.api, first_name="Crash", last_name="Between")
    _crash_after_remote_create(connected, tmp_path)
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
    _crash_after_remote_create(connected, tmp_path)
    time.sleep(1.5)  # the dead worker's lease runs out
    connected.workers.start()
    remote_id = connected.remote_id("matter", matter["id"], timeout=30)
    connected.settle()
    matters = connected.clio.records("matters")
    assert [(m["id"], m["description"]) for m in matters] == [(remote_id, "Crash-tested purchase")]
    assert connected.api.get(f"/api/v1/matters/{matter['id']}").json()["display_number"] == "00001-Client"


def test_a_long_outage_after_the_crash_neither_duplicates_nor_loses_the_edit_made_meanwhile(
    connected: Connected, tmp_path: Path
) -> None:
    """The worker dies after Clio's 201 and stays down for an hour; meanwhile the contact is edited
    here and Clio's webhook about the new contact arrives. Whichever runs first, the Clio record made
    before the crash is adopted (not made again, not copied back here) and the edit reaches Clio."""
    from sqlalchemy import select

    from casebridge.db.session import unit_of_work
    from casebridge.models import SyncLink
    from casebridge.sync.engine import reconcile
    from casebridge.sync.runtime import sync_env

    connected.settle()
    connected.workers.stop()
    contact = create_contact(connected.api, first_name="Before", last_name="Outage")
    _crash_after_remote_create(connected, tmp_path)
    [remote] = connected.clio.records("contacts")

    def placeholder() -> uuid.UUID | None:
        with unit_of_work(connected.backend.db.reader) as session:
            return session.scalar(
                select(SyncLink.id).where(SyncLink.remote_id == remote["id"], SyncLink.local_id.is_(None))
            )

    placeholder_id = connected.wait(placeholder, what="Clio's webhook about the new contact")
    r = connected.api.patch(f"/api/v1/contacts/{contact['id']}", json={"first_name": "During"})
    assert r.status_code == 200, r.text
    with unit_of_work(connected.backend.db.writer) as session:  # an hour passes
        link = session.scalar(select(SyncLink).where(SyncLink.local_id == uuid.UUID(contact["id"])))
        assert link is not None
        assert link.intent is not None
        link.intent = {
            **link.intent,
            "at": (datetime.fromisoformat(link.intent["at"]) - timedelta(hours=1)).isoformat(),
        }
        assert link.lease_until is not None
        link.lease_until -= timedelta(hours=1)  # the dead worker's lease on the record ran out long ago

    # The webhook's reconcile goes first: it must wait for the create in flight, not copy it here.
    env = sync_env(connected.backend.db, connected.backend.settings)
    reconcile(env, placeholder_id, trigger="test", owner="test")
    assert len(connected.api.get("/api/v1/contacts", params={"q": "Outage"}).json()["data"]) == 1
    journal = [j["action"] for j in connected.status("contact", contact["id"])["journal"]]
    assert "create_remote" not in journal

    connected.workers.start()
    remote_id = connected.remote_id("contact", contact["id"], timeout=30)
    assert remote_id == remote["id"]
    connected.wait(
        lambda: [c["first_name"] for c in connected.clio.records("contacts")] == ["During"],
        what="the edit made during the outage to reach Clio",
    )
    connected.settle()
    assert [(c["id"], c["first_name"]) for c in connected.clio.records("contacts")] == [(remote_id, "During")]
    here = connected.api.get("/api/v1/contacts", params={"q": "Outage"}).json()["data"]
    assert [(c["id"], c["first_name"]) for c in here] == [(contact["id"], "During")]
    assert placeholder() is None  # taken in by the link that made the record

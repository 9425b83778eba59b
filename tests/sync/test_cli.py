"""``casebridge clio connect | status | disconnect`` as a user runs them, against the sandbox server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import Backend, LiveServer
from tests.factories import create_contact
from tests.sync.conftest import Clio, Workers, wait_for

ROOT = Path(__file__).resolve().parents[2]
CASEBRIDGE = str(Path(sys.executable).parent / "casebridge")


def _run(backend: Backend, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CASEBRIDGE_DATABASE_URL": backend.url,
        "CASEBRIDGE_DATA_DIR": str(backend.settings.data_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    env.pop("CASEBRIDGE_PUBLIC_URL", None)
    return subprocess.run(
        [CASEBRIDGE, "clio", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_connect_to_a_sandbox_unattended_then_status_and_disconnect(
    clio: Clio, sync_worker: Workers, live_server: LiveServer, clean: Backend, api: httpx.Client
) -> None:
    clean.settings.public_url = None
    connected = _run(clean, "connect", "--base-url", clio.url)
    assert connected.returncode == 0, connected.stderr
    assert "connected" in connected.stdout
    assert "Sandbox Law LLP" in connected.stdout  # who_am_i's account
    assert "CASEBRIDGE_PUBLIC_URL is not set" in connected.stderr  # so it polls

    # The worker syncs what the CLI connected.
    create_contact(api, first_name="From", last_name="Cli")
    wait_for(
        lambda: any(c["last_name"] == "Cli" for c in clio.records("contacts")), what="the contact in Clio"
    )
    status = _run(clean, "status")
    assert status.returncode == 0, status.stderr
    assert "contacts: 1 linked" in status.stdout
    as_json = _run(clean, "status", "--json")
    assert '"healthy"' in as_json.stdout

    again = _run(clean, "connect", "--base-url", clio.url)
    assert again.returncode == 1
    assert "already connected" in again.stderr
    assert "Traceback" not in again.stderr

    gone = _run(clean, "disconnect")
    assert gone.returncode == 0, gone.stderr
    assert "Disconnected" in gone.stdout
    assert "Not connected" in _run(clean, "disconnect").stdout


def test_bad_options_are_one_clear_line(clean: Backend) -> None:
    both = _run(clean, "connect", "--region", "eu", "--base-url", "http://127.0.0.1:1")
    assert both.returncode == 2
    assert "not both" in both.stderr
    mars = _run(clean, "connect", "--region", "mars")
    assert mars.returncode == 2
    assert "--region must be one of us, ca, eu, au" in mars.stderr
    no_app = _run(clean, "connect", "--region", "us")
    assert no_app.returncode == 1
    assert "--client-id" in no_app.stderr
    assert "Traceback" not in no_app.stderr + mars.stderr + both.stderr

"""``casebridge sandbox clio`` as a process: seed file, registered app, state that survives a restart,
and clear one-line errors for bad options."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from scripts.trim_clio_spec import strip

from tests.sandbox.conftest import ok

CASEBRIDGE = str(Path(sys.executable).parent / "casebridge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sandbox_process(log: Path, *args: str) -> Iterator[str]:
    port = free_port()
    with log.open("ab") as sink:  # a file, not a pipe: it can never fill up and block the server
        proc = subprocess.Popen(
            [CASEBRIDGE, "sandbox", "clio", "--port", str(port), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/_sandbox/state", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"sandbox did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def test_seed_apps_and_state_survive_a_restart(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        json.dumps(
            {
                "settings": {"account_name": "Smith & Co", "next_matter_number": 41},
                "contacts": [
                    {"type": "Person", "first_name": "Ann", "last_name": "Smith", "name": "Ann Smith"}
                ],
            }
        )
    )
    state = tmp_path / "clio.db"
    log = tmp_path / "sandbox.log"
    with sandbox_process(
        log, "--seed", str(seed), "--state-file", str(state), "--app", "cb:s3cret:http://127.0.0.1/cb"
    ) as url:
        apps = ok(httpx.get(f"{url}/_sandbox/apps"))
        assert [(a["client_id"], a["client_secret"]) for a in apps] == [("cb", "s3cret")]
        token = ok(httpx.post(f"{url}/_sandbox/tokens", json={"client_id": "cb"}), 201)["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        matter = httpx.post(
            f"{url}/api/v4/matters.json?fields=id,display_number",
            headers=auth,
            json={"data": {"description": "Sale", "client": {"id": 1}}},
        )
        assert ok(matter, 201)["data"]["display_number"] == "00041-Smith"
    with sandbox_process(log, "--state-file", str(state)) as url:
        auth = {"Authorization": f"Bearer {token}"}  # tokens survive too
        me = ok(httpx.get(f"{url}/api/v4/users/who_am_i.json?fields=account{{name}}", headers=auth))
        assert me["data"]["account"]["name"] == "Smith & Co"
        again = httpx.post(
            f"{url}/api/v4/matters.json?fields=display_number",
            headers=auth,
            json={"data": {"description": "Purchase", "client": {"id": 1}}},
        )
        assert ok(again, 201)["data"]["display_number"] == "00042-Smith"
        assert ok(httpx.get(f"{url}/_sandbox/state"))["counts"]["matters"] == 2


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CASEBRIDGE, "sandbox", "clio", *args], capture_output=True, text=True, timeout=60)


def test_bad_options_are_one_clear_line(tmp_path: Path) -> None:
    bad_seed = tmp_path / "seed.json"
    bad_seed.write_text('{"widgets": []}')
    cases = {
        ("--seed", str(tmp_path / "missing.json")): "no such file",
        ("--seed", str(bad_seed)): "unknown seed sections: widgets",
        ("--app", "only-an-id"): "expected CLIENT_ID:CLIENT_SECRET:REDIRECT_URI",
        ("--faults", "{not json"): "not valid JSON",
    }
    for args, message in cases.items():
        result = run(*args, "--port", str(free_port()))
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_the_trim_script_keeps_fields_named_like_prose_keywords() -> None:
    schema = {
        "description": "prose",
        "title": "Matter",
        "properties": {
            "description": {"type": "string", "description": "prose"},
            "title": {"type": "string"},
        },
    }
    assert strip(schema) == {"properties": {"description": {"type": "string"}, "title": {"type": "string"}}}

"""The `casebridge` console script, run as a real subprocess against SQLite and PostgreSQL.

Every user error must end as one line on stderr with a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from casebridge.auth.service import authenticate
from casebridge.config import Settings
from casebridge.db import migrate
from casebridge.db.session import Database, unit_of_work
from casebridge.demo import DemoError, reset, seed_firm
from casebridge.kit.context import Role

_SCRIPT = Path(sys.executable).parent / "casebridge"
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "casebridge.cli"]
UNREACHABLE_PG = "postgresql://postgres:s3cret@127.0.0.1:1/nope"


def _env(**settings: str | None) -> dict[str, str]:
    """The test process's environment without CASEBRIDGE_* settings, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEBRIDGE_")}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in settings.items():
        if value is not None:
            env[f"CASEBRIDGE_{key.upper()}"] = value
    return env


@dataclass
class Cli:
    url: str
    data_dir: Path
    cwd: Path

    def env(self, **extra: str) -> dict[str, str]:
        return _env(database_url=self.url, data_dir=str(self.data_dir), **extra)

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            env=self.env(**extra_env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout


def _libpq(url: str) -> str:
    u = make_url(url)
    parts = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, "dbname": u.database}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


@pytest.fixture(scope="module")
def pg_cli_url(pg_database: str) -> Iterator[str]:
    """A PostgreSQL database of this module's own (next to the run's), so `db upgrade` starts empty."""
    name = f"cb_cli_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(pg_database), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(pg_database).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(_libpq(pg_database), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_pg(url: str) -> None:
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgresql"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """A fresh, empty, unmigrated database of each kind and a data dir, both under tmp paths."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cb.db'}"
    else:
        url = request.getfixturevalue("pg_cli_url")
        _reset_pg(url)
    return Cli(url, tmp_path / "data", tmp_path)


@pytest.fixture
def sqlite_cli(tmp_path: Path) -> Cli:
    return Cli(f"sqlite:///{tmp_path / 'cb.db'}", tmp_path / "data", tmp_path)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *, code: int | None = None) -> str:
    """A failure: non-zero exit, exactly one line on stderr, no traceback anywhere."""
    assert result.returncode != 0, result
    if code is not None:
        assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- db ------------------------------------------------------------------------------------------


def test_db_upgrade_then_current_is_at_head(cli: Cli) -> None:
    head = migrate.head_revision()
    assert head is not None
    assert "run `casebridge db upgrade`" in cli.ok("db", "current")

    out = cli.ok("db", "upgrade")
    assert "(empty database)" in out
    assert head in out

    assert "already at the newest migration" in cli.ok("db", "upgrade")
    assert cli.ok("db", "current").strip() == f"{head} (head: the newest migration)"


def test_serve_refuses_an_unmigrated_database(sqlite_cli: Cli) -> None:
    result = sqlite_cli.run("serve", "--port", str(free_port()))
    line = assert_one_line_error(result, code=1)
    assert line == "casebridge: database is not at the newest migration; run `casebridge db upgrade`"


def test_token_commands_refuse_an_unmigrated_database(sqlite_cli: Cli) -> None:
    line = assert_one_line_error(sqlite_cli.run("token", "list"), code=1)
    assert "run `casebridge db upgrade`" in line


# --- tokens --------------------------------------------------------------------------------------


def test_token_create_list_revoke(cli: Cli) -> None:
    cli.ok("db", "upgrade")
    created = cli.run("token", "create", "--role", "staff", "--name", "x")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert created.stdout == secret + "\n", "the secret alone on stdout, so TOKEN=$(...) works"
    assert secret.startswith("cb_")
    assert "only time" in created.stderr

    db = Database.from_url(cli.url)
    try:
        with unit_of_work(db.reader) as session:
            found = authenticate(session, secret)
        assert found is not None
        principal = found.principal
        assert principal.role is Role.STAFF
        assert principal.name == "x"

        listing = cli.ok("token", "list")
        header, *rows = listing.strip().splitlines()
        assert header.split()[:4] == ["id", "name", "role", "prefix"]
        (row,) = [r for r in rows if r.split()[1] == "x"]
        assert row.split()[2] == "staff"
        assert secret[:10] in row
        assert secret not in listing
        assert row.rstrip().endswith("-"), "not revoked yet"

        # A second active token with the same name would make `revoke x` ambiguous.
        duplicate = cli.run("token", "create", "--role", "admin", "--name", "x")
        assert "already exists" in assert_one_line_error(duplicate, code=1)

        revoked = cli.ok("token", "revoke", "x")
        assert revoked.startswith("revoked staff token 'x'")
        with unit_of_work(db.reader) as session:
            assert authenticate(session, secret) is None

        (row,) = [r for r in cli.ok("token", "list").splitlines()[1:] if r.split()[1] == "x"]
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}$", row.rstrip()), "revoked column has a date"
        assert "x" not in [r.split()[1] for r in cli.ok("token", "list", "--active").splitlines()[1:]]
        assert "already revoked" in cli.ok("token", "revoke", secret[:10])
    finally:
        db.dispose()

    unknown = cli.run("token", "revoke", "no-such-token")
    assert "no token matches 'no-such-token'" in assert_one_line_error(unknown, code=1)


def test_token_create_with_a_read_only_role_and_unknown_user(sqlite_cli: Cli) -> None:
    sqlite_cli.ok("db", "upgrade")
    assert sqlite_cli.ok("token", "create", "--role", "read-only", "--name", "ro").startswith("cb_")
    assert "read-only" in sqlite_cli.ok("token", "list")
    result = sqlite_cli.run(
        "token",
        "create",
        "--role",
        "staff",
        "--name",
        "u",
        "--user-id",
        "2b1a0c56-3a3c-4c8e-9a55-111111111111",
    )
    assert "no user with id" in assert_one_line_error(result, code=1)


def test_bad_role_lists_the_choices(sqlite_cli: Cli) -> None:
    result = sqlite_cli.run("token", "create", "--role", "boss", "--name", "x")
    line = assert_one_line_error(result)
    assert "--role" in line
    assert "'boss'" in line
    for role in Role:
        assert f"'{role.value}'" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--bogus"], "No such option: --bogus"),
        (["--bogus"], "No such option: --bogus"),
        (["serve", "--port", "99999"], "--port"),
        (["serve", "--port", "eighty"], "--port"),
        (["token", "create", "--role", "staff"], "Missing option '--name'"),
        (["token", "create", "--role", "staff", "--name", "x", "--user-id", "nope"], "--user-id"),
        (["frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_usage_errors_are_one_clear_line(sqlite_cli: Cli, args: list[str], expected: str) -> None:
    line = assert_one_line_error(sqlite_cli.run(*args), code=2)
    assert expected in line
    assert line.startswith("casebridge")
    assert "--help" in line


# --- unreachable or misconfigured database -------------------------------------------------------


@pytest.mark.parametrize("args", [["db", "current"], ["db", "upgrade"], ["token", "list"], ["serve"]])
def test_unreachable_postgresql_is_one_line_exit_2(tmp_path: Path, args: list[str]) -> None:
    cli = Cli(UNREACHABLE_PG, tmp_path / "data", tmp_path)
    line = assert_one_line_error(cli.run(*args), code=2)
    assert line.startswith(
        "casebridge: cannot reach the database at postgresql://postgres:***@127.0.0.1:1/nope: "
    )
    assert "s3cret" not in line


def test_unopenable_sqlite_is_one_line_exit_2(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'missing-dir' / 'cb.db'}", tmp_path / "data", tmp_path)
    assert "cannot reach the database" in assert_one_line_error(cli.run("db", "upgrade"), code=2)


@pytest.mark.parametrize("url", ["not a url", "mysql://user@host/db"])
def test_unusable_database_url(tmp_path: Path, url: str) -> None:
    cli = Cli(url, tmp_path / "data", tmp_path)
    assert "not a usable database URL" in assert_one_line_error(cli.run("db", "current"), code=2)


def test_bad_setting_is_one_line(sqlite_cli: Cli) -> None:
    line = assert_one_line_error(sqlite_cli.run("db", "current", DB_POOL_SIZE="lots"), code=1)
    assert line.startswith("casebridge: bad setting CASEBRIDGE_DB_POOL_SIZE:")


# --- openapi, documents, serve -------------------------------------------------------------------


def test_openapi_needs_no_database(tmp_path: Path) -> None:
    cli = Cli(UNREACHABLE_PG, tmp_path / "data", tmp_path)
    document = json.loads(cli.ok("openapi"))
    assert document["info"]["title"] == "Casebridge API"
    assert "/api/v1/matters" in document["paths"]
    assert not (tmp_path / "data").exists()


def test_documents_purge(sqlite_cli: Cli) -> None:
    sqlite_cli.ok("db", "upgrade")
    assert sqlite_cli.ok("documents", "purge").startswith("purged 0 documents")


class Process:
    """A long-running CLI subprocess whose stdout and stderr are read in background threads."""

    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [*CLI, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out_lines: list[str] = []
        self.err_lines: list[str] = []
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out_lines), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err_lines), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: IO[str], into: list[str]) -> None:
        for line in stream:
            into.append(line)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first match of ``pattern`` in stdout so far, waiting for more output if need be."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, "".join(self.out_lines))
            if match:
                return match
            if self.proc.poll() is not None and not any(t.is_alive() for t in self._threads):
                break
            time.sleep(0.05)
        raise AssertionError(
            f"{pattern!r} not printed (exit {self.proc.poll()}):\n{''.join(self.out_lines)}\n{''.join(self.err_lines)}"
        )

    def interrupt(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    @property
    def output(self) -> str:
        return "".join(self.out_lines) + "".join(self.err_lines)


def _wait_ready(url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_serve_serves_and_stops_on_ctrl_c(sqlite_cli: Cli) -> None:
    sqlite_cli.ok("db", "upgrade")
    port = free_port()
    proc = Process(["serve", "--port", str(port), "--no-worker"], env=sqlite_cli.env(), cwd=sqlite_cli.cwd)
    try:
        response = _wait_ready(f"http://127.0.0.1:{port}/readyz")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "ok"
    finally:
        code = proc.interrupt()
    assert code == 0, proc.output
    assert "Traceback" not in proc.output
    assert "Finished server process" in proc.output


def test_serve_on_a_busy_port_is_one_line(sqlite_cli: Cli) -> None:
    sqlite_cli.ok("db", "upgrade")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = assert_one_line_error(sqlite_cli.run("serve", "--port", str(port)), code=1)
    assert line.startswith(f"casebridge: cannot listen on 127.0.0.1:{port}:")


# --- demo ----------------------------------------------------------------------------------------


def _demo(tmp_path: Path, *args: str) -> tuple[Process, str, str]:
    """Start `casebridge demo` with its defaults (./casebridge.db, ./casebridge-data) in tmp_path."""
    proc = Process(["demo", "--port", str(free_port()), "--clio-port", "0", *args], env=_env(), cwd=tmp_path)
    try:
        token = proc.wait_for(r"export TOKEN=(cb_\S+)").group(1)
        base = proc.wait_for(r"Base URL:\s+(http://\S+)").group(1)
    except BaseException:
        proc.close()
        raise
    return proc, token, base


def _get(base: str, token: str, path: str, **params: str | int) -> httpx.Response:
    return httpx.get(f"{base}{path}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_demo_seeds_serves_and_stops_cleanly(tmp_path: Path) -> None:
    proc, token, base = _demo(tmp_path)
    try:
        matters = _get(base, token, "/matters", limit=200)
        assert matters.status_code == 200, matters.text
        rows = matters.json()["data"]
        assert len(rows) >= 6
        assert all(m["display_number"] for m in rows)
        assert {"Conveyancing", "Probate", "Family", "Commercial", "Employment"} <= {
            m["practice_area"] for m in rows
        }
        assert {"open", "pending"} <= {m["status"] for m in rows}
        assert any(m["participants"] for m in rows)

        one = _get(base, token, f"/matters/{rows[0]['id']}")
        assert one.status_code == 200
        assert one.json()["display_number"] == rows[0]["display_number"]

        activities = _get(base, token, "/activities", limit=200)
        assert activities.status_code == 200, activities.text
        entries = activities.json()["data"]
        assert len([a for a in entries if a["kind"] == "time"]) >= 15
        assert len([a for a in entries if a["kind"] == "expense"]) >= 5
        assert {"draft", "submitted", "approved"} <= {a["state"] for a in entries}

        documents = _get(base, token, "/documents", matter_id=rows[0]["id"])
        assert documents.status_code == 200, documents.text
        assert documents.json()["data"]

        assert _get(base, token, "/contacts", limit=200).json()["data"]
        assert (tmp_path / "casebridge.db").exists()
        assert (tmp_path / "casebridge-data").is_dir()
        assert f"{base}/matters/{rows[0]['id']}" in "".join(proc.out_lines), "a ready-to-paste example"

        # The Clio sandbox runs beside it, seeded, with a token printed to try it.
        clio_token = proc.wait_for(r"export CLIO_TOKEN=(\S+)").group(1)
        clio_base = proc.wait_for(r"Clio API:\s+(http://\S+)").group(1)
        clio_matters = httpx.get(
            f"{clio_base}/matters.json",
            params={"fields": "display_number,client{name}"},
            headers={"Authorization": f"Bearer {clio_token}"},
        )
        assert clio_matters.status_code == 200, clio_matters.text
        assert [m["display_number"] for m in clio_matters.json()["data"]][:2] == [
            "00001-Okafor",
            "00002-Reyes",
        ]

        # ...and Casebridge is connected to it: a change on either side crosses to the other.
        crossed = proc.wait_for(r"made in Clio, now in Casebridge: (.+)").group(1)
        assert crossed.startswith("in "), crossed
        assert (
            proc.wait_for(r"matter opened in Casebridge, created in Clio as (.+?): ").group(1)[:8]
            != "PENDING-"
        )
        made = httpx.post(
            f"{clio_base}/contacts.json",
            json={"data": {"type": "Company", "name": "Harbour Surveyors Ltd"}},
            headers={"Authorization": f"Bearer {clio_token}"},
        )
        assert made.status_code == 201, made.text
        deadline = time.monotonic() + 30
        while not _get(base, token, "/contacts", q="Harbour Surveyors").json()["data"]:
            assert time.monotonic() < deadline, "the contact made in Clio did not arrive"
            time.sleep(0.1)
    finally:
        code = proc.interrupt()
    assert code == 0, proc.output
    assert "Traceback" not in proc.output
    assert "Finished server process" in proc.output, "the server shut down before the process exited"
    first_title = rows[0]["title"]

    def copies(base: str, token: str) -> int:
        found = _get(base, token, "/matters", limit=200).json()["data"]
        return sum(1 for m in found if m["title"] == first_title)

    # A second run does not seed again, and its fresh token replaces the first one.
    proc, token2, base = _demo(tmp_path)
    try:
        assert token2 != token
        assert copies(base, token2) == 1
        assert _get(base, token, "/matters").status_code == 401
    finally:
        code = proc.interrupt()
    assert code == 0, proc.output
    assert "not seeding" in proc.output

    # --reset starts afresh: the same seed, not a second copy.
    proc, token3, base = _demo(tmp_path, "--reset")
    try:
        assert copies(base, token3) == 1
    finally:
        code = proc.interrupt()
    assert code == 0, proc.output


def test_demo_reset_deletes_only_what_is_ours(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "important.txt").write_text("not ours")
    db_file = tmp_path / "cb.db"
    db_file.write_text("")
    with pytest.raises(DemoError, match="will not delete"):
        reset(Settings(database_url=f"sqlite:///{db_file}", data_dir=data))
    assert (data / "important.txt").exists()
    assert db_file.exists()

    with pytest.raises(DemoError, match="only deletes a SQLite database"):
        reset(Settings(database_url=UNREACHABLE_PG, data_dir=data))

    shutil.rmtree(data)
    (data / "blobs").mkdir(parents=True)
    (data / "secret.key").write_text("k")
    reset(Settings(database_url=f"sqlite:///{db_file}", data_dir=data))
    assert not data.exists()
    assert not db_file.exists()


def test_a_failed_seed_call_names_the_problem() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        problem = {
            "type": "/problems/validation",
            "title": "Validation failed",
            "status": 422,
            "detail": "The request has invalid fields; see errors.",
            "errors": [
                {"field": "body.email", "message": "'x' is not an email address", "code": "value_error"}
            ],
        }
        return httpx.Response(422, json=problem, headers={"Content-Type": "application/problem+json"})

    with (
        httpx.Client(transport=httpx.MockTransport(handler), base_url="http://demo/api/v1") as client,
        pytest.raises(
            DemoError, match=r"POST /api/v1/users -> 422 Validation failed; .*body\.email: 'x' is not"
        ),
    ):
        seed_firm(client)

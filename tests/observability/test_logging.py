"""Structured logs: one JSON object per line, with the request id of the request (equal to the
response's X-Request-Id) and the job id of the job that logged; never a token.

In-process tests attach a handler to the ``casebridge`` logger; the process tests read what a real
``casebridge serve`` and ``casebridge worker`` write to stderr."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from casebridge.app import create_app
from casebridge.auth.service import create_token
from casebridge.db.session import unit_of_work
from casebridge.jobs import queue
from casebridge.jobs.registry import JobRegistry
from casebridge.jobs.worker import JobContext, Worker
from casebridge.kit.context import Role
from casebridge.models import Job
from casebridge.observability.logging import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    job_id_var,
    job_kind_var,
    redact,
    request_id_var,
)
from tests.conftest import Backend, _serve
from tests.observability.promtext import parse

ROOT = Path(__file__).resolve().parents[2]
CASEBRIDGE = str(Path(sys.executable).parent / "casebridge")


# --- the formatter -----------------------------------------------------------------------------------


def _json_handler(stream: io.StringIO) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    return handler


@contextmanager
def captured(
    name: str = "casebridge", level: int = logging.DEBUG
) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every record of logger ``name`` as parsed JSON lines (each line must be one JSON object)."""
    stream = io.StringIO()
    logger = logging.getLogger(name)
    handler = _json_handler(stream)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_a_line_is_one_json_object_with_the_context_ids() -> None:
    with captured("casebridge.tests") as lines:
        log = logging.getLogger("casebridge.tests")
        log.info("outside")
        rid, jid, kind = request_id_var.set("req-1"), job_id_var.set(42), job_kind_var.set("x.y")
        try:
            log.warning("inside %s", "both", extra={"matter": "M-1", "n": 3})
        finally:
            request_id_var.reset(rid)
            job_id_var.reset(jid)
            job_kind_var.reset(kind)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    outside, inside, failed = lines()
    assert set(outside) == {"ts", "level", "logger", "message"}
    assert outside["level"] == "info"
    assert outside["logger"] == "casebridge.tests"
    assert outside["ts"].endswith("+00:00")
    assert inside["message"] == "inside both"
    assert (inside["request_id"], inside["job_id"], inside["job_kind"]) == ("req-1", 42, "x.y")
    assert (inside["matter"], inside["n"]) == ("M-1", 3)
    assert failed["level"] == "error"
    assert "ValueError: boom" in failed["exc_info"]
    assert "Traceback" in failed["exc_info"]


@pytest.mark.parametrize(
    "secret",
    [
        "Authorization: Bearer cb_abcdefghijklmnop",
        "authorization=Basic dXNlcjpwYXNz",
        "token cb_AbCdEf0123456789xyz leaked",
        "postgresql://app:hunter2@db:5432/casebridge",
        "https://x/callback?token=hunter2&x=1",
    ],
)
def test_secrets_are_masked(secret: str) -> None:
    masked = redact(secret)
    for word in ("abcdefghijklmnop", "dXNlcjpwYXNz", "AbCdEf0123456789xyz", "hunter2"):
        assert word not in masked, masked
    with captured("casebridge.tests") as lines:
        logging.getLogger("casebridge.tests").error("saw %s", secret)
    assert "[redacted]" in lines()[0]["message"]


def test_text_format_carries_the_ids_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    handler.addFilter(ContextFilter())
    log = logging.getLogger("casebridge.tests.text")
    log.addHandler(handler)
    token = request_id_var.set("req-9")
    try:
        log.warning("hello")
    finally:
        request_id_var.reset(token)
        log.removeHandler(handler)
    assert "WARNING casebridge.tests.text [req=req-9] hello" in stream.getvalue()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_log_config_routes_every_logger_through_one_handler(fmt: str) -> None:
    """Applied in a child process: dictConfig changes process-wide state."""
    code = (
        "import logging, logging.config\n"
        "from casebridge.observability.logging import log_config\n"
        f"logging.config.dictConfig(log_config({fmt!r}, 'info'))\n"
        "logging.getLogger('casebridge.jobs').info('ours')\n"
        "logging.getLogger('uvicorn.error').info('theirs')\n"
        "logging.getLogger('sqlalchemy.engine').info('too chatty: dropped')\n"
        "logging.getLogger('httpx').warning('a library warning')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stderr.splitlines()
    if fmt == "json":
        assert [(r["logger"], r["message"]) for r in map(json.loads, out)] == [
            ("casebridge.jobs", "ours"),
            ("uvicorn.error", "theirs"),
            ("httpx", "a library warning"),
        ]
    else:
        assert len(out) == 3
        assert " INFO    casebridge.jobs ours" in out[0]


# --- in process: request ids and job ids -------------------------------------------------------------


def test_request_log_lines_carry_the_request_id(backend: Backend) -> None:
    app: FastAPI = create_app(backend.settings, db=backend.db)

    @app.get("/_boom")
    def boom() -> None:
        raise RuntimeError("internal detail")

    server, thread, base = _serve(app)
    try:
        with captured() as lines:
            ok = httpx.get(f"{base}/api/v1/jobs/5", headers={"X-Request-Id": "trace-ok-1"}, timeout=30)
            anon = httpx.get(f"{base}/healthz", timeout=30)
            bad = httpx.get(f"{base}/_boom", headers={"X-Request-Id": "trace-boom-1"}, timeout=30)
        records = lines()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert ok.status_code == 401
    assert bad.status_code == 500
    access = {r["request_id"]: r for r in records if r["logger"] == "casebridge.access"}
    assert access["trace-ok-1"]["route"] == "/api/v1/jobs/{job_id}"
    assert access["trace-ok-1"]["status"] == 401
    assert access["trace-ok-1"]["method"] == "GET"
    assert access["trace-ok-1"]["duration_ms"] >= 0
    assert anon.headers["x-request-id"] in access  # a generated id, echoed and logged alike
    assert access["trace-boom-1"]["status"] == 500
    errors = [r for r in records if r["logger"] == "casebridge.errors"]
    assert errors, records
    assert errors[0]["request_id"] == "trace-boom-1"  # the 500 handler runs outside the middleware
    assert "RuntimeError: internal detail" in errors[0]["exc_info"]


def test_job_log_lines_carry_the_job_id(clean: Backend) -> None:
    log = logging.getLogger("casebridge.tests.job")

    def talk(ctx: JobContext) -> None:
        log.info("working on %s", ctx.args["n"])

    def fail(ctx: JobContext) -> None:
        raise RuntimeError("nope")

    registry = JobRegistry()
    registry.register("obs.talk", talk)
    registry.register("obs.fail", fail)
    with unit_of_work(clean.db.writer) as session:
        talk_id = queue.enqueue(session, "obs.talk", {"n": 1})
        fail_id = queue.enqueue(session, "obs.fail", max_attempts=1)
    worker = Worker(clean.db, registry, poll_interval=0.05, lease_seconds=5)
    with captured() as lines:
        worker.start()
        try:
            deadline = time.monotonic() + 20
            while True:
                with unit_of_work(clean.db.reader) as session:
                    states = {j.id: j.state for j in session.query(Job)}
                if states.get(talk_id) == "completed" and states.get(fail_id) == "dead":
                    break
                assert time.monotonic() < deadline, states
                time.sleep(0.05)
        finally:
            worker.shutdown_grace = 5
            worker.stop()
        records = lines()
    talked = [r for r in records if r["message"] == "working on 1"]
    assert talked
    assert talked[0]["job_id"] == talk_id
    assert talked[0]["job_kind"] == "obs.talk"
    failed = [r for r in records if r.get("job_id") == fail_id]
    assert failed
    assert failed[0]["level"] == "warning"
    assert "nope" in failed[0]["message"]
    assert all("job_id" not in r for r in records if "worker" in r["message"] and "started" in r["message"])


# --- real processes ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env(backend: Backend, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CASEBRIDGE_DATABASE_URL": backend.url,
        "CASEBRIDGE_DATA_DIR": str(backend.settings.data_dir),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        **extra,
    }


def _json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"stderr line {n} is not JSON: {line!r}") from None
        assert isinstance(out[-1], dict)
        assert {"ts", "level", "logger", "message"} <= set(out[-1])
    return out


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_serve_writes_json_lines_with_the_request_id(clean: Backend, tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "serve.log"
    with unit_of_work(clean.db.writer) as session:
        secret = create_token(session, name="log-test", role=Role.ADMIN).secret
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [CASEBRIDGE, "serve", "--no-worker", "--port", str(port), "--log-format", "json"],
            env=_env(clean),
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {secret}"}
        listed = httpx.get(f"{base}/api/v1/jobs", headers={**auth, "X-Request-Id": "serve-1"}, timeout=30)
        missing = httpx.get(f"{base}/api/v1/jobs/77", headers=auth, timeout=30)  # a generated request id
        denied = httpx.get(
            f"{base}/api/v1/jobs", headers={"Authorization": "Bearer cb_not-a-real-token-123456"}, timeout=30
        )
        assert (listed.status_code, missing.status_code, denied.status_code) == (200, 404, 401)
        time.sleep(0.3)
    finally:
        _stop(proc)
    records = _json_lines(log)
    access = {r["request_id"]: r for r in records if r["logger"] == "casebridge.access"}
    assert access["serve-1"]["route"] == "/api/v1/jobs"
    assert access["serve-1"]["status"] == 200
    generated = missing.headers["x-request-id"]
    assert access[generated]["route"] == "/api/v1/jobs/{job_id}"
    assert access[generated]["status"] == 404
    assert access[denied.headers["x-request-id"]]["status"] == 401
    assert any(r["logger"].startswith("uvicorn") for r in records)  # uvicorn's own lines are JSON too
    text = log.read_text()
    assert secret not in text
    assert "not-a-real-token" not in text
    assert "authorization" not in text.lower()


def test_worker_writes_json_lines_with_the_job_id_and_serves_metrics(clean: Backend, tmp_path: Path) -> None:
    with unit_of_work(clean.db.writer) as session:
        chatty = [queue.enqueue(session, "obs.chatty", {"n": n}) for n in range(3)]
        doomed = queue.enqueue(session, "obs.doomed")
    port = _free_port()
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [CASEBRIDGE, "worker", "--log-format", "json", "--metrics-port", str(port), "--lease", "5"],
            env=_env(clean, CASEBRIDGE_JOB_MODULES="tests.observability.sample_jobs"),
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            with unit_of_work(clean.db.reader) as session:
                states = {j.id: j.state for j in session.query(Job).filter(Job.kind.like("obs.%"))}
            if all(states.get(i) == "completed" for i in chatty) and states.get(doomed) == "dead":
                break
            assert time.monotonic() < deadline, (states, log.read_text()[-2000:])
            time.sleep(0.1)
        exp = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    finally:
        _stop(proc)
    assert proc.returncode == 0, log.read_text()
    assert exp.value("casebridge_job_outcomes_total", kind="obs.chatty", outcome="completed") == 3
    assert exp.value("casebridge_job_outcomes_total", kind="obs.doomed", outcome="dead") == 1
    assert exp.value("casebridge_job_wait_seconds_count", kind="obs.chatty") == 3
    assert exp.value("casebridge_job_run_seconds_count", kind="obs.chatty") == 3
    records = _json_lines(log)
    hello = {r["job_id"]: r for r in records if r["message"].startswith("hello from job")}
    assert set(hello) == set(chatty)
    assert all(
        r["job_kind"] == "obs.chatty" and r["logger"] == "casebridge.tests.jobs" for r in hello.values()
    )
    assert {r["n"] for r in hello.values()} == {0, 1, 2}
    assert any("started" in r["message"] and "job_id" not in r for r in records)
    assert any(r["message"].startswith("stopping") for r in records)

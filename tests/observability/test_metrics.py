"""/metrics: the exposition format, the job gauges read from the database, the request counters, the
delivery gauges, the optional bearer token; and the registry itself."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from casebridge.app import create_app
from casebridge.config import Settings
from casebridge.db.session import Database, unit_of_work
from casebridge.jobs import queue
from casebridge.models import Event, EventDelivery, EventSubscription, Job, Webhook, WebhookDelivery
from casebridge.observability.exporter import start_metrics_server
from casebridge.observability.metrics import JOB_OUTCOMES, Registry
from casebridge.observability.routes import METRICS_TOKEN_ENV
from tests.conftest import Backend, LiveServer, _serve
from tests.observability.promtext import Exposition, parse

# --- the registry ------------------------------------------------------------------------------------


def test_counter_gauge_and_histogram_render_in_the_text_format() -> None:
    reg = Registry()
    c = reg.counter("t_things_total", "Things.", ["kind"])
    g = reg.gauge("t_level", "A level.\nSecond line with a \\ backslash.")
    h = reg.histogram("t_seconds", "Durations.", ["kind"], buckets=[0.1, 1])
    c.inc(kind='we"ird\\la\nbel')
    c.inc(2, kind="plain")
    g.set(2.5)
    for v in (0.05, 0.1, 0.5, 3):
        h.observe(v, kind="a")
    text = reg.render()
    assert "# HELP t_level A level.\\nSecond line with a \\\\ backslash.\n" in text
    exp = parse(text)
    assert exp.types == {"t_things_total": "counter", "t_level": "gauge", "t_seconds": "histogram"}
    assert exp.value("t_things_total", kind='we"ird\\la\nbel') == 1
    assert exp.value("t_things_total", kind="plain") == 2
    assert exp.value("t_level") == 2.5
    # cumulative buckets; "le" is inclusive (0.1 falls in le="0.1")
    assert exp.value("t_seconds_bucket", kind="a", le="0.1") == 2
    assert exp.value("t_seconds_bucket", kind="a", le="1") == 3
    assert exp.value("t_seconds_bucket", kind="a", le="+Inf") == 4
    assert exp.value("t_seconds_count", kind="a") == 4
    assert math.isclose(exp.value("t_seconds_sum", kind="a") or 0, 3.65)


def test_the_registry_refuses_mistakes() -> None:
    reg = Registry()
    with pytest.raises(ValueError, match="_total"):
        reg.counter("t_things", "x")
    c = reg.counter("t_things_total", "x", ["kind"])
    with pytest.raises(ValueError, match="registered twice"):
        reg.counter("t_things_total", "x")
    with pytest.raises(ValueError, match="labels"):
        c.inc(other="x")
    with pytest.raises(ValueError, match="only goes up"):
        c.inc(-1, kind="x")
    with pytest.raises(ValueError, match="reserved"):
        reg.histogram("t_h", "x", ["le"], buckets=[1])


def test_an_empty_registry_is_a_valid_exposition() -> None:
    reg = Registry()
    reg.counter("t_total", "Nothing yet.", ["kind"])
    assert parse(reg.render()).samples == {}


# --- GET /metrics ------------------------------------------------------------------------------------


def scrape(base: str, **kw: str) -> Exposition:
    r = httpx.get(f"{base}/metrics", headers=kw, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def test_metrics_parse_and_need_no_token(live_server: LiveServer, clean: Backend) -> None:
    exp = scrape(live_server.url)
    for family in (
        "casebridge_jobs",
        "casebridge_job_wait_seconds",
        "casebridge_job_run_seconds",
        "casebridge_job_outcomes_total",
        "casebridge_http_requests_total",
        "casebridge_http_request_duration_seconds",
        "casebridge_webhook_deliveries_total",
        "casebridge_event_deliveries",
        "casebridge_events_total",
        "casebridge_database_up",
    ):
        assert family in exp.types, family
    assert exp.value("casebridge_database_up") == 1
    assert exp.types["casebridge_job_wait_seconds"] == "histogram"
    assert exp.types["casebridge_jobs"] == "gauge"


def test_job_gauges_reflect_enqueued_and_dead_jobs(live_server: LiveServer, clean: Backend) -> None:
    with unit_of_work(clean.db.writer) as session:
        for _ in range(3):
            queue.enqueue(session, "obs.a")
        queue.enqueue(session, "obs.b", queue="mail")
        doomed = queue.enqueue(session, "obs.c", queue="mail")
    with unit_of_work(clean.db.writer) as session:
        session.execute(update(Job).where(Job.id == doomed).values(state="dead"))
    exp = scrape(live_server.url)
    assert exp.value("casebridge_jobs", queue="default", state="available") == 3
    assert exp.value("casebridge_jobs", queue="default", state="dead") == 0  # zeros are exposed too
    assert exp.value("casebridge_jobs", queue="mail", state="available") == 1
    assert exp.value("casebridge_jobs", queue="mail", state="dead") == 1
    assert exp.value("casebridge_jobs", queue="mail", state="running") == 0
    assert (exp.value("casebridge_jobs_oldest_available_age_seconds") or 0) >= 0


def test_oldest_available_age_is_zero_when_nothing_is_due(live_server: LiveServer, clean: Backend) -> None:
    from casebridge.db.types import utcnow

    with unit_of_work(clean.db.writer) as session:
        queue.enqueue(session, "obs.later", run_at=utcnow() + timedelta(hours=1))
    assert scrape(live_server.url).value("casebridge_jobs_oldest_available_age_seconds") == 0
    with unit_of_work(clean.db.writer) as session:
        queue.enqueue(session, "obs.late", run_at=utcnow() - timedelta(minutes=10))
    age = scrape(live_server.url).value("casebridge_jobs_oldest_available_age_seconds") or 0
    assert 590 < age < 3600


def test_request_counters_count_route_templates(api: httpx.Client, live_server: LiveServer) -> None:
    route = "/api/v1/jobs/{job_id}"
    before = scrape(live_server.url)
    for n in (101, 102, 103):
        assert api.get(f"/api/v1/jobs/{n}").status_code == 404
    assert api.get("/api/v1/contacts").status_code == 200
    assert httpx.get(f"{live_server.url}/no/such/path/{'x' * 20}").status_code == 404
    after = scrape(live_server.url)

    def delta(name: str, **labels: str) -> float:
        return (after.value(name, **labels) or 0) - (before.value(name, **labels) or 0)

    assert delta("casebridge_http_requests_total", method="GET", route=route, status="404") == 3
    assert delta("casebridge_http_request_duration_seconds_count", method="GET", route=route) == 3
    assert delta("casebridge_http_requests_total", method="GET", route="/api/v1/contacts", status="200") == 1
    assert delta("casebridge_http_requests_total", method="GET", route="unmatched", status="404") == 1
    # raw paths never become label values
    routes = {dict(labels).get("route") for labels in after.series("casebridge_http_requests_total")}
    assert not any(r and ("/101" in r or "xxxx" in r) for r in routes), routes
    assert "/metrics" in routes  # the previous scrape was counted too


def test_webhook_and_event_delivery_gauges(live_server: LiveServer, clean: Backend) -> None:
    with unit_of_work(clean.db.writer) as session:
        hook = Webhook(url="https://example.invalid/hook", event_types=["*"], secret_encrypted="x")
        sub = EventSubscription(name="metrics-test", kind="webhook")
        session.add_all([hook, sub])
        session.flush()
        events = [Event(type="contact.created", entity_type="contact", entity_id=str(n)) for n in range(4)]
        session.add_all(events)
        session.flush()
        for ok in (True, True, False):
            session.add(
                WebhookDelivery(
                    webhook_id=hook.id, event_type="contact.created", succeeded=ok, status_code=200
                )
            )
        for ev, state in zip(events, ["pending", "pending", "delivered", "failed"], strict=True):
            session.add(
                EventDelivery(subscription_id=sub.id, event_id=ev.id, entity_key=f"c:{ev.id}", state=state)
            )
        top = max(e.id for e in events)
    exp = scrape(live_server.url)
    assert exp.value("casebridge_webhook_deliveries_total", outcome="succeeded") == 2
    assert exp.value("casebridge_webhook_deliveries_total", outcome="failed") == 1
    assert exp.value("casebridge_event_deliveries", state="pending") == 2
    assert exp.value("casebridge_event_deliveries", state="delivered") == 1
    assert exp.value("casebridge_event_deliveries", state="failed") == 1
    assert exp.value("casebridge_events_total") == top


@contextmanager
def served_app(backend: Backend) -> Iterator[str]:
    server, thread, url = _serve(create_app(backend.settings, db=backend.db))
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_metrics_token_when_configured(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(METRICS_TOKEN_ENV, "s3cret-metrics")
    with served_app(backend) as base:
        r = httpx.get(f"{base}/metrics", timeout=30)
        assert r.status_code == 401
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "s3cret" not in r.text
        wrong = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"}, timeout=30)
        assert wrong.status_code == 401
        exp = scrape(base, Authorization="Bearer s3cret-metrics")
        assert "casebridge_jobs" in exp.types
        assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200  # only /metrics is guarded


def test_metrics_stay_up_when_the_database_is_not(tmp_path: Path) -> None:
    root = tmp_path
    (root / "not-a-dir").write_text("")
    url = f"sqlite:///{root / 'not-a-dir' / 'x.db'}"  # cannot be opened
    db = Database.from_url(url)
    settings = Settings(database_url=url, data_dir=root / "data", secret_key="x" * 32, embedded_worker=False)
    server, thread, base = _serve(create_app(settings, db=db))
    try:
        r = httpx.get(f"{base}/metrics", timeout=30)
        assert r.status_code == 200
        exp = parse(r.text)
        assert exp.value("casebridge_database_up") == 0
        assert "casebridge_http_requests_total" in exp.types
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_worker_exporter_serves_process_metrics_and_honours_the_token() -> None:
    JOB_OUTCOMES.inc(kind="obs.exporter", outcome="completed")
    server = start_metrics_server("127.0.0.1", _free_port(), "tok")
    port = server.server_address[1]
    base = f"http://127.0.0.1:{port}"
    try:
        denied = httpx.get(f"{base}/metrics", timeout=10)
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"].startswith("Bearer")
        r = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer tok"}, timeout=10)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        exp = parse(r.text)
        assert (
            exp.value("casebridge_job_outcomes_total", kind="obs.exporter", outcome="completed") or 0
        ) >= 1
        assert "casebridge_jobs" not in exp.types  # database gauges come from the API's /metrics only
        assert httpx.get(f"{base}/other", timeout=10).status_code == 404
    finally:
        server.shutdown()
        server.server_close()

"""Fixtures for webhook tests: a loopback receiver, a compressed retry schedule and a job worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from casebridge.jobs.builtin import build_registry
from casebridge.jobs.worker import Worker
from casebridge.webhooks import subscriber
from tests.conftest import Backend, LiveServer
from tests.webhooks.receiver import Receiver, running_receiver

SENDER_TIMEOUT = 1.0  # the delivery timeout in tests (production: 10 s)


@pytest.fixture
def fast() -> Iterator[subscriber.Config]:
    """Seconds instead of hours: retries every ~0.05-0.2 s, a 1 s timeout, many attempts."""
    previous = subscriber.configure(
        backoff_base=0.05,
        backoff_cap=0.2,
        max_attempts=60,
        timeout=SENDER_TIMEOUT,
        connect_timeout=SENDER_TIMEOUT,
    )
    yield subscriber.CONFIG
    subscriber.restore(previous)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver(timeout_hint=SENDER_TIMEOUT) as r:
        yield r


@pytest.fixture
def worker(live_server: LiveServer, clean: Backend) -> Iterator[Worker]:
    w = Worker(
        clean.db,
        build_registry(clean.settings),
        settings=clean.settings,
        concurrency=4,
        poll_interval=0.05,
        lease_seconds=5,
    )
    w.start()
    yield w
    w.shutdown_grace = 5
    w.stop()
    subscriber.close_http()


MakeWebhook = Callable[..., dict[str, Any]]


@pytest.fixture
def make_webhook(api: httpx.Client) -> MakeWebhook:
    def make(url: str, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"url": url, "event_types": ["contact.*", "matter.*"]}
        body.update(overrides)
        r = api.post("/api/v1/webhooks", json=body)
        assert r.status_code == 201, r.text
        created: dict[str, Any] = r.json()
        return created

    return make

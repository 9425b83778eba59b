"""Event fan-out: every subscriber gets every event it wants, in order per entity, isolated from the others."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from casebridge.db.session import unit_of_work
from casebridge.events.delivery import Delivery, SubscriberKind, register_kind, subscribe
from casebridge.events.outbox import subscribers_changed
from casebridge.jobs.builtin import build_registry
from casebridge.jobs.worker import Worker
from casebridge.models import Event, EventDelivery, EventSubscription
from tests.conftest import Backend, LiveServer
from tests.factories import create_contact


class Sink:
    """A subscriber kind that records what it receives and fails on demand."""

    def __init__(self, name: str, *, max_attempts: int = 5) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.received: list[tuple[str, int, str, int]] = []  # (entity, event id, type, attempt)
        self.fail: dict[str, int] = {}  # entity id -> failures left (-1: always)
        self.exhausted: list[int] = []
        register_kind(
            SubscriberKind(
                name=name,
                wants=lambda _s, _sub, ev: ev.type.startswith("contact."),
                deliver=self.deliver,
                max_attempts=max_attempts,
                backoff_base=0.01,
                backoff_cap=0.05,
                on_exhausted=lambda _ctx, _sub, ev, _err: self.exhausted.append(ev.id),
            )
        )

    def deliver(self, d: Delivery) -> None:
        with self.lock:
            left = self.fail.get(d.event.entity_id, 0)
            if left:
                self.fail[d.event.entity_id] = left - 1 if left > 0 else -1
                raise ConnectionError(f"receiver down for {d.event.entity_id}")
            self.received.append((d.event.entity_id, d.event.id, d.event.type, d.attempt))

    def by_entity(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        with self.lock:
            for entity, event_id, _, _ in self.received:
                out[entity].append(event_id)
        return out


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not delivered in time"
        time.sleep(0.02)


@pytest.fixture
def worker(live_server: LiveServer, clean: Backend) -> Iterator[Worker]:
    w = Worker(clean.db, build_registry(), concurrency=4, poll_interval=0.05, lease_seconds=5)
    w.start()
    yield w
    w.shutdown_grace = 5
    w.stop()


def add_subscription(backend: Backend, name: str, kind: str) -> None:
    with unit_of_work(backend.db.writer) as session:
        subscribe(session, name=name, kind=kind)


def contact_events(backend: Backend) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    with unit_of_work(backend.db.reader) as session:
        for ev in session.scalars(select(Event).where(Event.type.like("contact.%")).order_by(Event.id)):
            out[ev.entity_id].append(ev.id)
    return out


def delivery_states(backend: Backend) -> set[str]:
    with unit_of_work(backend.db.reader) as session:
        return {d.state for d in session.scalars(select(EventDelivery))}


def touch_contacts(api: httpx.Client, n: int, edits: int) -> list[dict[str, Any]]:
    made = [create_contact(api) for _ in range(n)]
    for i in range(edits):
        for c in made:
            assert api.patch(f"/api/v1/contacts/{c['id']}", json={"notes": f"edit {i}"}).status_code == 200
    return made


def test_every_event_reaches_each_subscriber_in_order_per_entity(
    api: httpx.Client, clean: Backend, worker: Worker
) -> None:
    a, b = Sink("sink-a-order"), Sink("sink-b-order")
    before = create_contact(api)  # before the subscriptions: not delivered
    add_subscription(clean, "a", a.name)
    add_subscription(clean, "b", b.name)
    touch_contacts(api, 4, 3)
    expected = {k: v for k, v in contact_events(clean).items() if k != before["id"]}
    wait_for(lambda: a.by_entity() == expected and b.by_entity() == expected)
    assert before["id"] not in a.by_entity()
    wait_for(lambda: delivery_states(clean) == {"delivered"})  # marked after the subscriber returns


def test_a_failing_entity_waits_in_order_while_others_and_other_subscribers_proceed(
    api: httpx.Client, clean: Backend, worker: Worker
) -> None:
    flaky, steady = Sink("sink-flaky"), Sink("sink-steady")
    add_subscription(clean, "flaky", flaky.name)
    add_subscription(clean, "steady", steady.name)
    victim = create_contact(api)
    flaky.fail[victim["id"]] = 3  # its first delivery fails three times
    touch_contacts(api, 3, 2)
    for i in range(3):
        api.patch(f"/api/v1/contacts/{victim['id']}", json={"notes": f"v{i}"})
    expected = contact_events(clean)
    wait_for(lambda: steady.by_entity() == expected)
    wait_for(lambda: flaky.by_entity() == expected)
    attempts = [att for ent, _, _, att in flaky.received if ent == victim["id"]]
    assert attempts[0] == 4  # delivered on its fourth attempt ...
    assert flaky.by_entity()[victim["id"]] == expected[victim["id"]]  # ... and the rest after it, in order


def test_exhausted_delivery_is_marked_failed_and_the_entity_moves_on(
    api: httpx.Client, clean: Backend, worker: Worker
) -> None:
    sink = Sink("sink-exhaust", max_attempts=2)
    add_subscription(clean, "exhaust", sink.name)
    victim = create_contact(api)
    sink.fail[victim["id"]] = 2
    api.patch(f"/api/v1/contacts/{victim['id']}", json={"notes": "after"})
    events = contact_events(clean)[victim["id"]]
    wait_for(lambda: sink.by_entity().get(victim["id"]) == events[1:])
    assert sink.exhausted == [events[0]]
    wait_for(lambda: delivery_states(clean) == {"failed", "delivered"})
    with unit_of_work(clean.db.reader) as session:
        rows = {d.event_id: (d.state, d.attempts) for d in session.scalars(select(EventDelivery))}
    assert rows[events[0]][0] == "failed"
    assert rows[events[0]][1] == 2
    assert rows[events[1]][0] == "delivered"


def test_paused_subscription_keeps_its_deliveries_for_later(
    api: httpx.Client, clean: Backend, worker: Worker
) -> None:
    sink = Sink("sink-pause")
    add_subscription(clean, "pause", sink.name)
    with unit_of_work(clean.db.writer) as session:
        sub = session.scalar(select(EventSubscription).where(EventSubscription.name == "pause"))
        assert sub is not None
        sub.active = False
    made = touch_contacts(api, 2, 1)
    time.sleep(0.5)
    assert sink.by_entity() == {}
    with unit_of_work(clean.db.writer) as session:
        sub = session.scalar(select(EventSubscription).where(EventSubscription.name == "pause"))
        assert sub is not None
        sub.active = True
    subscribers_changed()
    api.patch(f"/api/v1/contacts/{made[0]['id']}", json={"notes": "wake"})  # any new event dispatches
    wait_for(lambda: sink.by_entity() == contact_events(clean))

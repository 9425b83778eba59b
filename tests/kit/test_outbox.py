"""The outbox writes queued events at commit on any session, not only the API's."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from casebridge.db.session import Database, unit_of_work
from casebridge.events import record_event
from casebridge.models import Event
from tests.conftest import Backend


def _record_then_fail(db: Database) -> None:
    with unit_of_work(db.writer) as session:
        record_event(session, "thing.rolled_back", "thing", "t-2")
        raise RuntimeError("the change fails")


def test_any_database_writes_events_at_commit_and_none_on_rollback(clean: Backend) -> None:
    db = Database.from_url(clean.url)  # a fresh engine, as the CLI and workers make one
    try:
        with unit_of_work(db.writer) as session:
            record_event(session, "thing.happened", "thing", "t-1", {"x": {"old": None, "new": 1}})
        with pytest.raises(RuntimeError, match="the change fails"):
            _record_then_fail(db)
        with unit_of_work(db.reader) as session:
            rows = list(session.scalars(select(Event)))
            assert [(e.type, e.entity_id, e.actor_name) for e in rows] == [
                ("thing.happened", "t-1", "system")
            ]
            assert session.scalar(select(func.count()).select_from(Event)) == 1
    finally:
        db.dispose()

"""Recurring schedules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from casebridge.jobs.cron import Schedule, ScheduleError


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("*/15 * * * *", "2026-11-21T10:07:30", "2026-11-21T10:15:00"),
        ("15 3 * * *", "2026-11-21T03:15:00", "2026-11-22T03:15:00"),
        ("0 9 * * 1-5", "2026-11-21T12:00:00", "2026-11-23T09:00:00"),  # Saturday → Monday
        ("0 0 1 * *", "2026-11-21T00:00:00", "2026-12-01T00:00:00"),
        ("@hourly", "2026-11-21T10:59:59", "2026-11-21T11:00:00"),
        ("0 12 29 2 *", "2026-03-01T00:00:00", "2028-02-29T12:00:00"),
        ("0 0 * * 7", "2026-11-21T00:00:00", "2026-11-22T00:00:00"),  # 7 is Sunday too
        ("@every 30s", "2026-11-21T10:00:10", "2026-11-21T10:00:30"),
    ],
)
def test_next_after(schedule: str, after: str, expected: str) -> None:
    assert Schedule.parse(schedule).next_after(t(after)) == t(expected)


def test_latest_slot_at_or_before() -> None:
    s = Schedule.parse("15 3 * * *")
    assert s.latest_at_or_before(t("2026-11-21T03:15:00")) == t("2026-11-21T03:15:00")
    assert s.latest_at_or_before(t("2026-11-21T03:14:59")) == t("2026-11-20T03:15:00")
    assert Schedule.parse("@every 5m").latest_at_or_before(t("2026-11-21T10:07:00")) == t(
        "2026-11-21T10:05:00"
    )


@pytest.mark.parametrize(
    "bad", ["* * * *", "61 * * * *", "*/0 * * * *", "a b c d e", "5-1 * * * *", "@every 0s"]
)
def test_bad_schedules_are_refused(bad: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(bad)

"""Schedules for recurring jobs: five-field cron (minute hour day-of-month month day-of-week, UTC)
with ``*``, ``a-b``, ``*/n``, ``a-b/n`` and lists; the shorthands ``@hourly``, ``@daily``, ``@weekly``,
``@monthly``; and ``@every 30s|5m|2h`` for intervals aligned to the Unix epoch.

A schedule defines *slots* (instants). ``latest_at_or_before(now)`` names the slot a recurring task
should have run for; the queue enqueues each (task, slot) at most once across all workers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_SHORTHANDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_NAMES = ["minute", "hour", "day of month", "month", "day of week"]
_EVERY = re.compile(r"^@every\s+(\d+)\s*([smh])$")
_LOOKBACK = timedelta(days=62)


class ScheduleError(ValueError):
    pass


def _field(text: str, lo: int, hi: int, name: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else None
        if step_text and (step is None or step == 0):
            raise ScheduleError(f"bad step in {name}: {part!r}")
        if body == "*":
            start, end = lo, hi
        elif re.fullmatch(r"\d+-\d+", body):
            start, end = (int(x) for x in body.split("-"))
        elif body.isdigit():
            start = end = int(body)
            if step:
                end = hi
        else:
            raise ScheduleError(f"bad {name}: {part!r}")
        if not (lo <= start <= hi and lo <= end <= hi and start <= end):
            raise ScheduleError(f"{name} {part!r} is outside {lo}-{hi}")
        values.update(range(start, end + 1, step or 1))
    if name == "day of week" and 7 in values:  # 0 and 7 are both Sunday
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    text: str
    fields: tuple[frozenset[int], ...] | None = None
    every: timedelta | None = None

    @classmethod
    def parse(cls, text: str) -> Schedule:
        text = text.strip()
        if m := _EVERY.match(text):
            n, unit = int(m.group(1)), m.group(2)
            seconds = n * {"s": 1, "m": 60, "h": 3600}[unit]
            if seconds <= 0:
                raise ScheduleError("an interval must be positive")
            return cls(text, every=timedelta(seconds=seconds))
        expr = _SHORTHANDS.get(text, text)
        parts = expr.split()
        if len(parts) != 5:
            raise ScheduleError(f"a cron schedule has 5 fields (minute hour day month weekday); got {text!r}")
        fields = tuple(_field(p, lo, hi, n) for p, (lo, hi), n in zip(parts, _RANGES, _NAMES, strict=True))
        return cls(text, fields=fields)

    def _matches_day(self, t: datetime) -> bool:
        assert self.fields is not None
        _, _, dom, month, dow = self.fields
        return t.month in month and t.day in dom and (t.isoweekday() % 7) in dow

    def next_after(self, t: datetime) -> datetime:
        """The first slot strictly after ``t``."""
        if self.every is not None:
            step = int(self.every.total_seconds())
            epoch = int(t.timestamp())
            return datetime.fromtimestamp((epoch // step + 1) * step, UTC)
        assert self.fields is not None
        minutes, hours = self.fields[0], self.fields[1]
        c = (t + timedelta(minutes=1)).replace(second=0, microsecond=0)
        limit = t + timedelta(days=366 * 5)
        while c <= limit:
            if not self._matches_day(c):
                c = (c + timedelta(days=1)).replace(hour=0, minute=0)
            elif c.hour not in hours:
                c = (c + timedelta(hours=1)).replace(minute=0)
            elif c.minute not in minutes:
                c += timedelta(minutes=1)
            else:
                return c
        raise ScheduleError(f"schedule {self.text!r} never fires")

    def latest_at_or_before(self, now: datetime) -> datetime | None:
        if self.every is not None:
            step = int(self.every.total_seconds())
            return datetime.fromtimestamp(int(now.timestamp()) // step * step, UTC)
        slot = None
        t = self.next_after(now - _LOOKBACK)
        while t <= now:
            slot = t
            t = self.next_after(t)
        return slot

"""A small, thread-safe Prometheus registry: counters, gauges and histograms with labels.

No dependency: the text exposition format (version 0.0.4) is a few lines to write, and the process
needs only what is here. Metrics live in this process (``REGISTRY``); values that are really rows in
the database (queue depth, deliveries) are read at scrape time by ``collect_database`` instead, so
every API process reports the same, true figure.

Names follow the Prometheus conventions: ``casebridge_`` prefix, base units (seconds), counters end
in ``_total``. Label values must come from small, closed sets (route templates, job kinds, outcomes),
never from ids or raw paths.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MetricType = Literal["counter", "gauge", "histogram"]
LabelValues = tuple[str, ...]

# Seconds. Wait time spans "picked up at once" to "queued behind a backlog for an hour".
WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
RUN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _labels(names: Sequence[str], values: Sequence[str], extra: tuple[str, str] | None = None) -> str:
    pairs = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)]
    if extra is not None:
        pairs.append(f'{extra[0]}="{_escape_label(extra[1])}"')
    return "{" + ",".join(pairs) + "}" if pairs else ""


@dataclass
class Family:
    """One metric family as exposed: its samples are (suffix, label names, label values, value)."""

    name: str
    type: MetricType
    help: str
    samples: list[tuple[str, Sequence[str], Sequence[str], float]] = field(default_factory=list)

    def add(self, value: float, labels: dict[str, str] | None = None, *, suffix: str = "") -> Family:
        labels = labels or {}
        self.samples.append((suffix, tuple(labels), tuple(labels.values()), float(value)))
        return self

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.type}"]
        for suffix, names, values, value in self.samples:
            lines.append(f"{self.name}{suffix}{_labels(names, values)} {format_value(value)}")
        return lines


class _Metric(ABC):
    type: MetricType

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.name} takes the labels {self.labelnames}, not {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labelnames)

    @abstractmethod
    def family(self) -> Family:
        """This metric's samples, for the exposition."""


class Counter(_Metric):
    type: MetricType = "counter"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"a counter's name ends in _total: {name}")
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def family(self) -> Family:
        # The family is named without _total in TYPE/HELP lines by OpenMetrics; the 0.0.4 text format,
        # which is what we serve, names it in full.
        fam = Family(self.name, "counter", self.help)
        with self._lock:
            items = sorted(self._values.items())
        for key, value in items:
            fam.add(value, dict(zip(self.labelnames, key, strict=True)))
        return fam


class Gauge(_Metric):
    type: MetricType = "gauge"

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {}

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.inc(-amount, **labels)

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def family(self) -> Family:
        fam = Family(self.name, "gauge", self.help)
        with self._lock:
            items = sorted(self._values.items())
        for key, value in items:
            fam.add(value, dict(zip(self.labelnames, key, strict=True)))
        return fam


@dataclass
class _Buckets:
    counts: list[int]  # one per upper bound, not cumulative; the last is +Inf
    total: float = 0.0
    count: int = 0


class Histogram(_Metric):
    type: MetricType = "histogram"

    def __init__(
        self, name: str, help: str, labelnames: Sequence[str] = (), *, buckets: Sequence[float]
    ) -> None:
        if "le" in labelnames:
            raise ValueError("'le' is reserved for histogram buckets")
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds != sorted(set(bounds)):
            raise ValueError("histogram buckets must be distinct")
        super().__init__(name, help, labelnames)
        self.bounds = [*bounds, math.inf]
        self._series: dict[LabelValues, _Buckets] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        index = bisect_left(self.bounds, value)  # the first bound >= value: "le" is inclusive
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Buckets([0] * len(self.bounds))
            series.counts[index] += 1
            series.total += value
            series.count += 1

    def snapshot(self, **labels: str) -> tuple[int, float]:
        """(count, sum) of one series, for tests."""
        with self._lock:
            series = self._series.get(self._key(labels))
            return (series.count, series.total) if series else (0, 0.0)

    def family(self) -> Family:
        fam = Family(self.name, "histogram", self.help)
        with self._lock:
            items = sorted((k, _Buckets(list(v.counts), v.total, v.count)) for k, v in self._series.items())
        for key, series in items:
            labels = dict(zip(self.labelnames, key, strict=True))
            cumulative = 0
            for bound, n in zip(self.bounds, series.counts, strict=True):
                cumulative += n
                fam.add(cumulative, {**labels, "le": format_value(bound)}, suffix="_bucket")
            fam.add(series.total, labels, suffix="_sum")
            fam.add(series.count, labels, suffix="_count")
        return fam


Collector = Callable[[], Iterable[Family]]


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def _add(self, metric: _Metric) -> None:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is registered twice")
            self._metrics[metric.name] = metric

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        metric = Counter(name, help, labelnames)
        self._add(metric)
        return metric

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        metric = Gauge(name, help, labelnames)
        self._add(metric)
        return metric

    def histogram(
        self, name: str, help: str, labelnames: Sequence[str] = (), *, buckets: Sequence[float]
    ) -> Histogram:
        metric = Histogram(name, help, labelnames, buckets=buckets)
        self._add(metric)
        return metric

    def families(self) -> list[Family]:
        with self._lock:
            metrics = list(self._metrics.values())
        return [m.family() for m in metrics]

    def render(self, extra: Iterable[Family] = ()) -> str:
        """The text exposition of this registry's metrics plus ``extra`` families (read at scrape time)."""
        lines: list[str] = []
        for fam in [*self.families(), *extra]:
            lines.extend(fam.render())
        return "\n".join(lines) + "\n"


# --- the process's metrics -------------------------------------------------------------------------

REGISTRY = Registry()
PROCESS_START = time.time()

JOB_WAIT = REGISTRY.histogram(
    "casebridge_job_wait_seconds",
    "Time from a job's due time (run_at) to the moment a worker of this process claimed it.",
    ["kind"],
    buckets=WAIT_BUCKETS,
)
JOB_RUN = REGISTRY.histogram(
    "casebridge_job_run_seconds",
    "Time a job's handler ran in a worker of this process, whatever the outcome.",
    ["kind"],
    buckets=RUN_BUCKETS,
)
JOB_OUTCOMES = REGISTRY.counter(
    "casebridge_job_outcomes_total",
    "Job attempts finished by workers of this process, by outcome: completed, retry, dead, snoozed, "
    "lost (the lease had expired) or unrecorded (the database could not be written).",
    ["kind", "outcome"],
)
HTTP_REQUESTS = REGISTRY.counter(
    "casebridge_http_requests_total",
    "HTTP requests answered by this process, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = REGISTRY.histogram(
    "casebridge_http_request_duration_seconds",
    "Time from a request's arrival to its last response byte, by method and route template.",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)

# What queue.fail/release/complete report, mapped to the outcome label.
_OUTCOMES = {"available": "retry", "merged": "retry"}


def job_outcome_label(outcome: str) -> str:
    return _OUTCOMES.get(outcome, outcome)


def process_families() -> list[Family]:
    from casebridge import __version__

    return [
        Family("casebridge_info", "gauge", "Always 1; the version label names the running release.").add(
            1, {"version": __version__}
        ),
        Family(
            "casebridge_process_start_time_seconds", "gauge", "When this process started (Unix time)."
        ).add(PROCESS_START),
    ]


# --- read from the database at scrape time ---------------------------------------------------------


def collect_database(session: Session) -> list[Family]:
    """Gauges that are rows in the database: a handful of cheap aggregate queries (GROUP BY on
    indexed columns, max of a primary key)."""
    from casebridge.jobs import queue
    from casebridge.models import Event, EventDelivery, Job, WebhookDelivery
    from casebridge.models.job import JOB_STATES

    jobs = Family(
        "casebridge_jobs",
        "gauge",
        "Jobs in the database by queue and state (available, running, completed, dead, cancelled).",
    )
    depth = queue.depth(session)
    for q in sorted({q for q, _ in depth}) or ["default"]:
        for state in JOB_STATES:  # every state, zeros included: a series never vanishes
            jobs.add(depth.get((q, state), 0), {"queue": q, "state": state})

    oldest = session.scalar(select(func.min(Job.run_at)).where(Job.state == "available"))
    lag = Family(
        "casebridge_jobs_oldest_available_age_seconds",
        "gauge",
        "Age of the oldest available job's due time (0 when none waits): how far behind the workers are.",
    )
    if oldest is not None:
        from casebridge.db.types import utcnow

        lag.add(max(0.0, (utcnow() - oldest).total_seconds()))
    else:
        lag.add(0)

    webhooks = Family(
        "casebridge_webhook_deliveries_total",
        "counter",
        "Webhook delivery attempts recorded in the database, by outcome (succeeded or failed).",
    )
    by_outcome = {
        bool(ok): int(n)
        for ok, n in session.execute(
            select(WebhookDelivery.succeeded, func.count()).group_by(WebhookDelivery.succeeded)
        )
    }
    webhooks.add(by_outcome.get(True, 0), {"outcome": "succeeded"})
    webhooks.add(by_outcome.get(False, 0), {"outcome": "failed"})

    deliveries = Family(
        "casebridge_event_deliveries",
        "gauge",
        "Event deliveries to subscribers (webhooks, workflows) by state: pending, delivered, failed.",
    )
    by_state = {
        str(s): int(n)
        for s, n in session.execute(select(EventDelivery.state, func.count()).group_by(EventDelivery.state))
    }
    for state in sorted({"pending", "delivered", "failed", *by_state}):
        deliveries.add(by_state.get(state, 0), {"state": state})

    events = Family(
        "casebridge_events_total",
        "counter",
        "Business events written to the outbox (the highest event id; ids are assigned in commit order).",
    )
    events.add(int(session.scalar(select(func.max(Event.id))) or 0))
    return [jobs, lag, webhooks, deliveries, events]

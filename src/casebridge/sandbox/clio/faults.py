"""Fault injection for chaos tests, set by CLI flag or ``PUT /_sandbox/faults``, reproducible from a
seed: every decision is drawn from one ``random.Random(seed)`` in call order, under a lock.

Request faults (``/api/v4`` only, decided before version check, authentication and rate limiting):

- ``latency``: a delay added to every request, from a distribution in milliseconds;
- one roll per request shares out ``error_rate`` (500/502/503 with Clio's error body, type
  ``ServerError``), ``reset_rate`` (the connection is cut mid-response) and ``timeout_rate`` (the request
  hangs ``timeout_seconds``, then is cut); the three add up to at most 1;
- ``rate_limit_burst``: the next N authenticated requests get 429 with ``Retry-After`` (via the limiter).

Webhook faults (``webhook_plan``, once per delivery attempt): drop, duplicate and reorder rates, and a fixed
added delay. A setting at 0 draws nothing from the generator, so request outcomes are reproducible from
the seed whatever the webhooks do unless webhook faults are set too. ``configure`` replaces the whole
configuration, re-seeds the generator and zeroes the counters.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send


@dataclass
class FaultConfig:
    seed: int = 0
    latency: dict[str, Any] = field(
        default_factory=dict
    )  # {"distribution": "fixed|uniform|normal|exponential", ...milliseconds}; {} is none
    error_rate: float = 0.0  # share of requests answered 500/502/503
    rate_limit_burst: int = 0  # the next N requests get 429 whatever the counter says
    reset_rate: float = 0.0  # share of requests whose connection is cut mid-response
    timeout_rate: float = 0.0  # share of requests that hang for ``timeout_seconds`` and then are cut
    timeout_seconds: float = 30.0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_delay_seconds: float = 0.0  # added to every delivery (before the time scale)
    webhook_reorder_rate: float = 0.0


@dataclass(frozen=True)
class WebhookPlan:
    drop: bool = False  # never sent (the retry schedule does not see it either)
    duplicate: bool = False  # sent twice
    delay_seconds: float = 0.0  # sent this much later (already multiplied by nothing: sandbox seconds)
    reorder: bool = False  # held back so that the next delivery to the same URL overtakes it


class FaultConfigError(ValueError, TypeError):
    """A fault setting that is unknown or out of range. Also a ``TypeError``, which is what an unknown
    keyword to ``FaultConfig`` raised before settings were validated, so callers catching either work."""


# Each distribution's parameters (all required, milliseconds).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "fixed": ("ms",),
    "uniform": ("min_ms", "max_ms"),
    "normal": ("mean_ms", "stddev_ms"),
    "exponential": ("mean_ms",),
}
KINDS = (
    "latency",
    "server_error",
    "rate_limited",
    "reset",
    "timeout",
    "webhook_drop",
    "webhook_duplicate",
    "webhook_reorder",
    "webhook_delay",
)
SERVER_ERRORS = (500, 502, 503)
_PHRASES = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
# What ``snapshot`` adds to the settings; accepted and ignored by ``configure`` so a snapshot can be PUT back.
_READ_ONLY = frozenset({"rate_limit_burst_left", "injected", "injected_latency_ms", "injected_server_errors"})
_RATES = frozenset(
    {
        "error_rate",
        "reset_rate",
        "timeout_rate",
        "webhook_drop_rate",
        "webhook_duplicate_rate",
        "webhook_reorder_rate",
    }
)


class ConnectionCut(Exception):
    """Raised inside an injected response after its first chunk: uvicorn then closes the connection."""


def _number(name: str, value: Any, *, low: float = 0.0, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FaultConfigError(f"{name} must be a number, not {value!r}")
    if not low <= value <= high:
        bounds = f"between {low:g} and {high:g}" if math.isfinite(high) else f"at least {low:g}"
        raise FaultConfigError(f"{name} must be {bounds}, not {value!r}")
    return float(value)


def _integer(name: str, value: Any, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultConfigError(f"{name} must be an integer, not {value!r}")
    if low is not None and value < low:
        raise FaultConfigError(f"{name} must be at least {low}, not {value!r}")
    return value


def _latency(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise FaultConfigError(f"latency must be an object, not {value!r}")
    if not value:
        return {}
    kind = value.get("distribution")
    if not isinstance(kind, str) or kind not in DISTRIBUTIONS:
        raise FaultConfigError(
            f"latency.distribution must be one of {', '.join(DISTRIBUTIONS)}, not {kind!r}"
        )
    wanted = DISTRIBUTIONS[kind]
    given = set(value) - {"distribution"}
    if given != set(wanted):
        problems = []
        if missing := [p for p in wanted if p not in given]:
            problems.append(f"missing {', '.join(missing)}")
        if extra := sorted(given - set(wanted)):
            problems.append(f"unknown {', '.join(extra)}")
        raise FaultConfigError(
            f"latency {kind!r} takes {', '.join(wanted)} (milliseconds): {'; '.join(problems)}"
        )
    params = {p: _number(f"latency.{p}", value[p]) for p in wanted}
    if kind == "uniform" and params["min_ms"] > params["max_ms"]:
        raise FaultConfigError("latency.min_ms must not be greater than latency.max_ms")
    if kind == "exponential" and params["mean_ms"] <= 0:
        raise FaultConfigError("latency.mean_ms must be greater than 0 for an exponential distribution")
    return {"distribution": kind, **params}


def validate(values: Any) -> FaultConfig:
    """A checked ``FaultConfig`` from settings as given (JSON), or ``FaultConfigError``."""
    if not isinstance(values, Mapping):
        raise FaultConfigError(f"fault settings must be an object, not {values!r}")
    known = [f.name for f in fields(FaultConfig)]
    unknown = sorted(set(values) - set(known) - _READ_ONLY)
    if unknown:
        raise FaultConfigError(f"unknown fault setting: {', '.join(unknown)}; known: {', '.join(known)}")
    given = {k: v for k, v in values.items() if k in known}
    checked: dict[str, Any] = {}
    for name, value in given.items():
        if name == "seed":
            checked[name] = _integer(name, value)
        elif name == "rate_limit_burst":
            checked[name] = _integer(name, value, low=0)
        elif name == "latency":
            checked[name] = _latency(value)
        elif name in _RATES:
            checked[name] = _number(name, value, high=1.0)
        else:  # timeout_seconds, webhook_delay_seconds
            checked[name] = _number(name, value)
    config = FaultConfig(**checked)
    if config.error_rate + config.reset_rate + config.timeout_rate > 1.0 + 1e-9:
        raise FaultConfigError("error_rate + reset_rate + timeout_rate must not exceed 1")
    return config


@dataclass(frozen=True)
class _Decision:
    latency_ms: float | None = None
    outcome: str | None = None  # "server_error", "reset", "timeout"
    status: int = 0
    hang_seconds: float = 0.0


class _CutResponse(Response):
    """A 200 that promises more body than it sends: the headers and a first chunk go out, then the
    application fails and uvicorn closes the connection, so the client sees the response break off
    (httpx: ``RemoteProtocolError``). The failure is a ``ConnectionCut``, which uvicorn's log skips."""

    def __init__(self, kind: str) -> None:
        super().__init__(status_code=200, media_type="application/json")
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = b'{"data":['
        headers = [
            (b"content-type", b"application/json; charset=utf-8"),
            (b"content-length", b"65536"),
            (b"x-sandbox-fault", self.kind.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": first, "more_body": True})
        raise ConnectionCut(f"injected fault: {self.kind}")


def _not_a_cut(record: logging.LogRecord) -> bool:
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, ConnectionCut)


def _quiet_uvicorn() -> None:
    """Injected cuts are not server errors: keep uvicorn from logging a traceback for each."""
    log = logging.getLogger("uvicorn.error")
    if _not_a_cut not in log.filters:
        log.addFilter(_not_a_cut)


class Faults:
    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        _quiet_uvicorn()
        self.configure(asdict(config or FaultConfig()))

    def configure(self, values: dict[str, Any]) -> FaultConfig:
        """Replace every setting (omitted ones take their defaults), re-seed and zero the counters.
        Invalid settings raise ``FaultConfigError`` and change nothing."""
        config = validate(values)
        with self._lock:
            self.config = config
            self.rng = random.Random(config.seed)
            self._burst_left = config.rate_limit_burst
            self._injected = dict.fromkeys(KINDS, 0)
            self._latency_ms = 0.0
            self._statuses = dict.fromkeys(SERVER_ERRORS, 0)
            return config

    def snapshot(self) -> dict[str, Any]:
        """The settings, plus what has been injected since they were set."""
        with self._lock:
            return {
                **asdict(self.config),
                "rate_limit_burst_left": self._burst_left,
                "injected": dict(self._injected),
                "injected_latency_ms": round(self._latency_ms, 3),
                "injected_server_errors": {str(s): n for s, n in self._statuses.items()},
            }

    def force_rate_limited(self) -> bool:
        with self._lock:
            if self._burst_left > 0:
                self._burst_left -= 1
                self._injected["rate_limited"] += 1
                return True
            return False

    def webhook_plan(self) -> WebhookPlan:
        """What to do with the next webhook delivery (drawn from the seeded generator)."""
        with self._lock:
            c = self.config
            if c.webhook_drop_rate and self.rng.random() < c.webhook_drop_rate:
                self._injected["webhook_drop"] += 1
                return WebhookPlan(drop=True)
            duplicate = bool(c.webhook_duplicate_rate) and self.rng.random() < c.webhook_duplicate_rate
            reorder = bool(c.webhook_reorder_rate) and self.rng.random() < c.webhook_reorder_rate
            self._injected["webhook_duplicate"] += duplicate
            self._injected["webhook_reorder"] += reorder
            self._injected["webhook_delay"] += c.webhook_delay_seconds > 0
            return WebhookPlan(
                drop=False, duplicate=duplicate, delay_seconds=c.webhook_delay_seconds, reorder=reorder
            )

    def _decide(self) -> _Decision:
        with self._lock:
            c, rng = self.config, self.rng
            latency_ms = None
            if c.latency:
                latency_ms = self._sample_latency(c.latency)
                self._injected["latency"] += 1
                self._latency_ms += latency_ms
            if not (c.error_rate or c.reset_rate or c.timeout_rate):
                return _Decision(latency_ms)
            roll = rng.random()
            if roll < c.error_rate:
                status = rng.choice(SERVER_ERRORS)
                self._injected["server_error"] += 1
                self._statuses[status] += 1
                return _Decision(latency_ms, "server_error", status)
            if roll < c.error_rate + c.reset_rate:
                self._injected["reset"] += 1
                return _Decision(latency_ms, "reset")
            if roll < c.error_rate + c.reset_rate + c.timeout_rate:
                self._injected["timeout"] += 1
                return _Decision(latency_ms, "timeout", hang_seconds=c.timeout_seconds)
            return _Decision(latency_ms)

    def _sample_latency(self, latency: dict[str, Any]) -> float:
        kind, rng = latency["distribution"], self.rng
        if kind == "fixed":
            return float(latency["ms"])
        if kind == "uniform":
            return rng.uniform(latency["min_ms"], latency["max_ms"])
        if kind == "normal":
            return max(0.0, rng.normalvariate(latency["mean_ms"], latency["stddev_ms"]))
        return rng.expovariate(1.0 / latency["mean_ms"])  # exponential

    async def before_request(self, request: Request) -> Response | None:
        """Delay the request, or answer it with an injected fault (``None``: carry on)."""
        decision = self._decide()
        if decision.latency_ms:
            await asyncio.sleep(decision.latency_ms / 1000)
        if decision.outcome == "server_error":
            from casebridge.sandbox.clio.app import clio_error_response
            from casebridge.sandbox.clio.errors import ClioError

            status = decision.status
            error = ClioError(status, "ServerError", f"{_PHRASES[status]} (sandbox fault injection)")
            return clio_error_response(error, {"X-Sandbox-Fault": "server_error"})
        if decision.outcome == "reset":
            return _CutResponse("reset")
        if decision.outcome == "timeout":
            await asyncio.sleep(decision.hang_seconds)
            return _CutResponse("timeout")
        return None

    async def after_response(self, request: Request, response: Response) -> Response:
        return response  # every request fault is decided before the request is handled

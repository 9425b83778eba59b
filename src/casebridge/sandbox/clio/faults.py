"""Fault injection for chaos tests, set by CLI flag or ``PUT /_sandbox/faults``, reproducible from a
seed: every decision is drawn from one ``random.Random(seed)`` in request order.

Request faults (``/api/v4`` only): added latency (a distribution), a 5xx rate, forced 429 bursts,
connection resets and timeouts. Webhook faults: drop, duplicate, delay and reorder rates.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response


@dataclass
class FaultConfig:
    seed: int = 0
    latency: dict[str, Any] = field(
        default_factory=dict
    )  # {"distribution": "fixed|uniform|exponential", ...}
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


class Faults:
    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(asdict(config or FaultConfig()))

    def configure(self, values: dict[str, Any]) -> FaultConfig:
        with self._lock:
            self.config = FaultConfig(**values)
            self.rng = random.Random(self.config.seed)
            self._burst_left = self.config.rate_limit_burst
            return self.config

    def snapshot(self) -> dict[str, Any]:
        return {**asdict(self.config), "rate_limit_burst_left": self._burst_left}

    def force_rate_limited(self) -> bool:
        with self._lock:
            if self._burst_left > 0:
                self._burst_left -= 1
                return True
            return False

    def webhook_plan(self) -> WebhookPlan:
        """What to do with the next webhook delivery (drawn from the seeded generator)."""
        return WebhookPlan()

    async def before_request(self, request: Request) -> Response | None:
        return None

    async def after_response(self, request: Request, response: Response) -> Response:
        return response

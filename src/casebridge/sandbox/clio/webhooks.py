"""Clio webhooks: the handshake, signed deliveries filtered by ``fields``, retries, expiry.

The :class:`Dispatcher` listens to every change (``state.changed``). Under the state lock, in the
thread that made the change, it decides what each enabled, unexpired webhook of that model receives,
renders the webhook's ``fields`` from the record as it is now, and queues the signed body; background
threads send it. Nothing is sent from an API request.

- **Lanes.** Deliveries queue per receiver URL and one thread per URL sends them in order, so a webhook's
  deliveries arrive in the order the changes happened; a failing receiver holds up only its own lane.
  A lane's thread starts when something is queued and ends when the lane is empty.
- **Handshake.** A webhook created, or whose URL changes, queues a handshake at the head of its lane:
  ``POST`` with ``X-Hook-Secret`` and ``{"data": {"webhook_id": N}}``. A 200 that echoes the secret
  enables the webhook; anything else leaves it ``pending`` (one attempt, no retry) until
  ``PUT /webhooks/{id}/activate``. Doing it here rather than in the create request means a receiver
  that calls the API back (even to activate) cannot deadlock the sandbox; the create response says
  ``pending`` and the webhook turns ``enabled`` moments later.
- **Updates** are delivered only when a rendered field other than ``etag``/``updated_at`` differs from
  what the webhook last sent for that record, except for the first event about a record the webhook
  ever sends. Matters also raise ``matter_opened|pended|closed`` when their status changes on update.
- **Retries.** 2xx, 3xx and 410 are success; 410 suspends the webhook. Anything else, or no answer
  within ``webhook_timeout``, is retried after 2, 4, 8 and 16 minutes (times ``webhook_time_scale``):
  five attempts, then the delivery is given up. The head of a lane waits for its retries.
- **Expiry** is on the sandbox clock: nothing is queued for, or sent to, a webhook past ``expires_at``.
- **Log.** Every handshake and delivery is a record of the table ``webhook_deliveries`` (see
  ``GET /_sandbox/state/webhook_deliveries``): its body, signature, status (``queued``, ``retrying``,
  ``delivered``, ``failed``, ``given_up``, ``dropped``, ``expired``, ``cancelled``), attempts and the
  receiver's answers.
- **Faults.** Before each delivery attempt the dispatcher asks ``faults.webhook_plan()`` whether to drop
  it (never sent, not retried), delay it (by ``delay_seconds`` times the time scale), send it twice, or
  hold it back so that the next delivery in its lane overtakes it (waiting up to two seconds, or the
  retry base at the time scale if longer, for one to come). Handshakes are not faulted.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import httpx

from casebridge.sandbox.clio import fields as fieldsel
from casebridge.sandbox.clio.faults import Faults, WebhookPlan
from casebridge.sandbox.clio.resource import Resource
from casebridge.sandbox.clio.spec import schemas
from casebridge.sandbox.clio.state import Record, SandboxState, iso

# Clio's webhook models: name -> (id, table, spec schema).
MODELS: dict[str, tuple[int, str, str]] = {
    "matter": (1, "matters", "Matter"),
    "activity": (2, "activities", "Activity"),
    "bill": (3, "bills", "Bill"),
    "calendar_entry": (4, "calendar_entries", "CalendarEntry"),
    "communication": (5, "communications", "Communication"),
    "contact": (6, "contacts", "Contact"),
    "task": (7, "tasks", "Task"),
    "document": (8, "documents", "Document"),
    "folder": (9, "folders", "Folder"),
    "clio_payments_payment": (10, "clio_payments_payments", "ClioPaymentsPayment"),
}
MODEL_BY_ID = {ident: name for name, (ident, _, _) in MODELS.items()}
MODEL_BY_TABLE = {table: name for name, (_, table, _) in MODELS.items()}
BASIC_EVENTS = ("created", "updated", "deleted")
STATUS_EVENTS = {"Open": "matter_opened", "Pending": "matter_pended", "Closed": "matter_closed"}
ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 120.0
# How long a delivery held back for reordering waits for one to overtake it (at least; or the retry
# base at the time scale), before it is sent anyway.
REORDER_HOLD_SECONDS = 2.0
UNWATCHED = ("etag", "updated_at")
LOG = "webhook_deliveries"


def events_of(model: str) -> tuple[str, ...]:
    if model == "matter":
        return (*BASIC_EVENTS, *STATUS_EVENTS.values())
    if model == "clio_payments_payment":
        return ("created", "updated")
    return BASIC_EVENTS


@cache
def resource_for(model: str) -> Resource | None:
    """The sandbox's resource for a model (``CONTACTS`` for ``contact``); None for models it lacks."""
    table = MODELS[model][1]
    name = f"casebridge.sandbox.clio.resources.{table}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None
    return next((v for v in vars(module).values() if isinstance(v, Resource) and v.kind == table), None)


def schema_for(model: str) -> str | None:
    """The schema a webhook's ``fields`` are checked against (None: the sandbox has none for it)."""
    res = resource_for(model)
    if res is not None:
        return res.schema
    name = MODELS[model][2]
    return name if name in schemas() else None


def signature(secret: str, body: bytes) -> str:
    """``X-Hook-Signature``: lowercase hex HMAC-SHA256 of the raw body, keyed by the shared secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def expired(state: SandboxState, hook: Record) -> bool:
    return datetime.fromisoformat(hook["expires_at"]) <= state.clock.now()


@dataclass(eq=False)
class _Job:
    handshake: bool
    log_id: int
    key: str  # the log record's ``_key``: a reset or a restart makes the job stale
    webhook_id: int
    secret: str
    url: str
    body: bytes
    attempts: int = 0
    due: float = 0.0  # time.monotonic()
    plan: WebhookPlan | None = None
    delayed: bool = False
    reordered: bool = False
    held_until: float | None = None


@dataclass
class _Lane:
    url: str
    jobs: deque[_Job] = field(default_factory=deque)
    thread: threading.Thread | None = None


@dataclass
class _Outcome:
    status: int | None
    error: str | None
    echoed_secret: str | None


class Dispatcher:
    def __init__(self, state: SandboxState, faults: Faults) -> None:
        self.state = state
        self.faults = faults
        # One lock for everything: the dispatcher's bookkeeping waits on the state's own lock, so a
        # change and the queueing of its deliveries are one step and no lock order can deadlock.
        self._cv = threading.Condition(state.lock)
        self._lanes: dict[str, _Lane] = {}
        self._stopping = False
        state.listeners.append(self.notify)
        self._resume()

    # listening -------------------------------------------------------------------------------------

    def notify(self, kind: str, event: str, record: Record, before: Record | None) -> None:
        with self._cv:
            if kind == "webhooks":
                self._webhook_changed(event, record, before)
                return
            model = MODEL_BY_TABLE.get(kind)
            if model is None:
                return
            for hook in sorted(self.state.all("webhooks"), key=lambda h: h["id"]):
                if hook["model"] != model or hook["status"] != "enabled" or expired(self.state, hook):
                    continue
                sends = self._events_for(hook, model, event, record, before)
                for name, data in sends:
                    self._queue_delivery(hook, name, data, record["id"])
                if sends or event == "deleted":
                    self.state.put("webhooks", hook)  # what it last sent (``_seen``) changed

    def _events_for(
        self, hook: Record, model: str, event: str, record: Record, before: Record | None
    ) -> list[tuple[str, dict[str, Any]]]:
        events = hook["events"]
        seen: dict[str, Any] = hook.setdefault("_seen", {})
        rid = str(record["id"])
        if event == "deleted":
            seen.pop(rid, None)
            return [("deleted", {"id": record["id"], "etag": record.get("etag")})] if event in events else []
        res = resource_for(model)
        if res is None:
            return []
        data = res.render(self.state, record, fieldsel.parse(hook["fields"]))
        watched = {k: v for k, v in data.items() if k not in UNWATCHED}
        out: list[tuple[str, dict[str, Any]]] = []
        if event == "created" and "created" in events:
            out.append(("created", data))
        if event == "updated" and "updated" in events and seen.get(rid) != watched:
            out.append(("updated", data))
        if model == "matter" and event == "updated" and before is not None:
            status = record.get("status")
            name = STATUS_EVENTS.get(str(status))
            if status != before.get("status") and name in events:
                out.append((str(name), data))
        if out:
            seen[rid] = watched
        return out

    def _webhook_changed(self, event: str, record: Record, before: Record | None) -> None:
        if event == "created" or (
            event == "updated" and before is not None and before.get("url") != record.get("url")
        ):
            body = json.dumps({"data": {"webhook_id": record["id"]}}, separators=(",", ":")).encode()
            self._queue(record, "handshake", body, None, handshake=True)
        else:
            self._cv.notify_all()  # lanes drop what a deleted or changed webhook no longer sends

    def _queue_delivery(self, hook: Record, event: str, data: dict[str, Any], record_id: int) -> None:
        body = {"data": data, "meta": {"event": event, "webhook_id": hook["id"]}}
        self._queue(hook, event, json.dumps(body, separators=(",", ":")).encode(), record_id)

    def _queue(
        self, hook: Record, event: str, body: bytes, record_id: int | None, *, handshake: bool = False
    ) -> None:
        now = iso(self.state.clock.now())
        log: Record = {
            "id": self.state.next_id(LOG),
            "webhook_id": hook["id"],
            "event": event,
            "record_id": record_id,
            "url": hook["url"],
            "body": body.decode(),
            "signature": None if handshake else signature(hook["shared_secret"], body),
            "status": "queued",
            "attempts": 0,
            "responses": [],
            "next_attempt_at": None,
            "created_at": now,
            "updated_at": now,
            "_key": secrets.token_hex(8),
        }
        self.state.put(LOG, log)
        job = _Job(handshake, log["id"], log["_key"], hook["id"], hook["shared_secret"], hook["url"], body)
        self._enqueue(job, first=handshake)

    def _enqueue(self, job: _Job, *, first: bool = False) -> None:
        if self._stopping:
            return
        lane = self._lanes.get(job.url)
        if lane is None:
            lane = self._lanes[job.url] = _Lane(job.url)
        if first:
            lane.jobs.appendleft(job)
        else:
            lane.jobs.append(job)
        if lane.thread is None:
            lane.thread = threading.Thread(
                target=self._run, args=(lane,), name=f"clio-webhooks {job.url}", daemon=True
            )
            lane.thread.start()
        self._cv.notify_all()

    def _resume(self) -> None:
        """With a state file: deliveries queued before a restart are queued again."""
        with self._cv:
            for log in sorted(self.state.all(LOG), key=lambda r: r["id"]):
                if log.get("status") not in ("queued", "retrying"):
                    continue
                hook = self.state.get("webhooks", log["webhook_id"])
                if hook is None:
                    self._finish(log, "cancelled")
                    continue
                handshake = log["event"] == "handshake"
                job = _Job(
                    handshake,
                    log["id"],
                    log["_key"],
                    hook["id"],
                    hook["shared_secret"],
                    log["url"],
                    log["body"].encode(),
                    attempts=int(log.get("attempts", 0)),
                )
                self._enqueue(job, first=handshake)

    # the lanes -------------------------------------------------------------------------------------

    def _run(self, lane: _Lane) -> None:
        try:
            with httpx.Client(timeout=self.state.config.webhook_timeout, follow_redirects=False) as client:
                while True:
                    with self._cv:
                        job = self._take(lane)
                        if job is None:
                            return
                    outcome = self._send(client, job)
                    with self._cv:
                        self._settle(lane, job, outcome)
        finally:
            with self._cv:  # however it ended, a later delivery to this URL gets a fresh lane
                if self._lanes.get(lane.url) is lane:
                    del self._lanes[lane.url]

    def _take(self, lane: _Lane) -> _Job | None:
        """The next job to send on this lane, once it is due (waits); None when the lane is done."""
        scale = self.state.config.webhook_time_scale
        while True:
            if self._stopping or not lane.jobs:
                if self._lanes.get(lane.url) is lane:
                    del self._lanes[lane.url]
                return None
            handshake = next((j for j in lane.jobs if j.handshake), None)
            if handshake is not None and handshake is not lane.jobs[0]:
                lane.jobs.remove(handshake)  # a handshake never waits behind a retrying delivery
                lane.jobs.appendleft(handshake)
            job = lane.jobs[0]
            final = self._stale(job)
            if final is not None:
                lane.jobs.popleft()
                log = self._log(job)
                if log is not None:
                    self._finish(log, final)
                continue
            now = time.monotonic()
            if job.due > now:
                self._cv.wait(job.due - now)
                continue
            if job.handshake:
                return job
            if job.plan is None:
                job.plan = self.faults.webhook_plan()  # once per attempt
            plan = job.plan
            if plan.drop:
                lane.jobs.popleft()
                log = self._log(job)
                if log is not None:
                    self._finish(log, "dropped")
                continue
            if plan.reorder and not job.reordered:
                if len(lane.jobs) > 1:
                    overtaking = lane.jobs[1]
                    job.reordered = overtaking.reordered = True  # it must not swap them back
                    lane.jobs[0], lane.jobs[1] = overtaking, job
                    continue
                if job.held_until is None:
                    job.held_until = now + max(REORDER_HOLD_SECONDS, BACKOFF_BASE_SECONDS * scale)
                if now < job.held_until:
                    self._cv.wait(job.held_until - now)
                    continue
                job.reordered = True
            if plan.delay_seconds > 0 and not job.delayed:
                job.delayed = True
                job.due = now + plan.delay_seconds * scale
                continue
            return job

    def _stale(self, job: _Job) -> str | None:
        """Why a queued job must not be sent any more (the log's final status), or None."""
        log = self._log(job)
        if log is None:
            return "gone"  # the state was reset
        hook = self.state.get("webhooks", job.webhook_id)
        if hook is None or hook["shared_secret"] != job.secret or hook["url"] != job.url:
            return "cancelled"
        if job.handshake:
            return None if hook["status"] == "pending" else "cancelled"
        if hook["status"] != "enabled":
            return "cancelled"
        if expired(self.state, hook):
            return "expired"
        return None

    def _send(self, client: httpx.Client, job: _Job) -> _Outcome:
        headers = {"Content-Type": "application/json", "User-Agent": "Clio-Sandbox-Webhooks/1.0"}
        if job.handshake:
            headers["X-Hook-Secret"] = job.secret
        else:
            headers["X-Hook-Signature"] = signature(job.secret, job.body)
        copies = 2 if job.plan is not None and job.plan.duplicate else 1
        outcomes = [self._post(client, job, headers) for _ in range(copies)]
        return outcomes[0]

    @staticmethod
    def _post(client: httpx.Client, job: _Job, headers: dict[str, str]) -> _Outcome:
        try:
            response = client.post(job.url, content=job.body, headers=headers)
        except httpx.TimeoutException:
            return _Outcome(None, "timeout", None)
        except Exception as exc:  # refused, reset, TLS, ...: a failed attempt, whatever it was
            return _Outcome(None, f"{type(exc).__name__}: {exc}", None)
        return _Outcome(response.status_code, None, response.headers.get("x-hook-secret"))

    def _settle(self, lane: _Lane, job: _Job, outcome: _Outcome) -> None:
        if job in lane.jobs:
            lane.jobs.remove(job)
        job.attempts += 1
        log = self._log(job)
        if log is None:
            return  # the state was reset while it was being sent
        log["attempts"] = job.attempts
        log["responses"] = [
            *log["responses"],
            {"at": iso(self.state.clock.now()), "status": outcome.status, "error": outcome.error},
        ]
        hook = self.state.get("webhooks", job.webhook_id)
        if hook is not None and hook["shared_secret"] != job.secret:
            hook = None
        if job.handshake:
            confirmed = outcome.status == 200 and outcome.echoed_secret == job.secret
            if confirmed and hook is not None and hook["status"] == "pending" and hook["url"] == job.url:
                hook["status"] = "enabled"
                self.state.put("webhooks", self.state.stamp(hook))
            self._finish(log, "delivered" if confirmed else "failed")
            return
        status = outcome.status
        if status is not None and (200 <= status < 400 or status == 410):
            if status == 410 and hook is not None and hook["status"] == "enabled":
                hook["status"] = "suspended"
                self.state.put("webhooks", self.state.stamp(hook))
            self._finish(log, "delivered")
            return
        if job.attempts >= ATTEMPTS:
            self._finish(log, "given_up")
            return
        wait = BACKOFF_BASE_SECONDS * 2 ** (job.attempts - 1)
        job.due = time.monotonic() + wait * self.state.config.webhook_time_scale
        job.plan, job.delayed, job.reordered, job.held_until = None, False, False, None
        log["next_attempt_at"] = iso(
            self.state.clock.now() + timedelta(seconds=wait * self.state.config.webhook_time_scale)
        )
        self._finish(log, "retrying")
        lane.jobs.appendleft(job)

    def _log(self, job: _Job) -> Record | None:
        log = self.state.get(LOG, job.log_id)
        return log if log is not None and log.get("_key") == job.key else None

    def _finish(self, log: Record, status: str) -> None:
        if status == "gone":
            return
        log["status"] = status
        if status != "retrying":
            log["next_attempt_at"] = None
        log["updated_at"] = iso(self.state.clock.now())
        self.state.put(LOG, log)

    # shutdown --------------------------------------------------------------------------------------

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            threads = [lane.thread for lane in self._lanes.values() if lane.thread is not None]
            self._cv.notify_all()
        for thread in threads:
            thread.join(timeout=2)

"""The sandbox's state: records per resource, OAuth apps and grants, account settings, uploaded bytes,
request counters, and a controllable clock.

State lives in memory. With ``SandboxConfig.state_file`` every change is also written through to a
SQLite file (a row per record, a row per uploaded blob) and read back at start, so the demo survives a
restart. One re-entrant lock serialises changes: the sandbox favours being exact over being fast.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

Record = dict[str, Any]

DEFAULT_SETTINGS: dict[str, Any] = {
    "account_id": 1,
    "account_name": "Sandbox Law LLP",
    # "default": [Matter number]-[Client summary name] (00001-Smith); "number": 00001;
    # "year": YYYY-00001; "year_month": YYYY-MM-00001; "manual": display_number is written by the client.
    "matter_numbering": "default",
    "matter_number_start": 1,
    "matter_number_digits": 5,
    "next_matter_number": 1,
}


@dataclass
class SandboxConfig:
    rate_limit: int = 50  # requests per window per access token
    rate_limit_window: float = 60.0  # seconds (Clio's minute; tests shorten it)
    allow_http_webhooks: bool = False
    webhook_time_scale: float = 1.0  # 0.001 makes Clio's 2-minute retry base 0.12 s
    webhook_timeout: float = 10.0
    state_file: Path | None = None
    public_url: str | None = None  # the base URL clients use (put_url, paging links); default: the request's


class Clock:
    """Wall-clock time plus an offset the admin API can move forward (to age tokens and webhooks)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="seconds")


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"__decimal__": str(value)}
    raise TypeError(f"cannot store {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> Any:
    if "__decimal__" in obj and len(obj) == 1:
        return Decimal(obj["__decimal__"])
    return obj


class SandboxState:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.clock = Clock()
        self.lock = threading.RLock()
        self.tables: dict[str, dict[int, Record]] = defaultdict(dict)
        self.sequences: Counter[str] = Counter()
        self.settings: dict[str, Any] = dict(DEFAULT_SETTINGS)
        self.blobs: dict[str, bytes] = {}
        self.requests_by_endpoint: Counter[str] = Counter()
        self.requests_by_token: Counter[str] = Counter()
        # 429s the rate limiter answered (not those forced by fault injection), per token.
        self.rate_limited_by_token: Counter[str] = Counter()
        # Called after every change a client makes: (kind, event, record, record before the change).
        # The webhook dispatcher listens here.
        self.listeners: list[Callable[[str, str, Record, Record | None], None]] = []
        self._db: sqlite3.Connection | None = None
        if self.config.state_file is not None:
            self._open(self.config.state_file)

    def changed(self, kind: str, event: str, record: Record, before: Record | None = None) -> None:
        for listener in list(self.listeners):
            listener(kind, event, record, before)

    def ensure_defaults(self) -> None:
        """The account's owner, the user OAuth authorizations act as, exists from the start."""
        with self.lock:
            if not self.tables["users"]:
                user_id = self.next_id("users")
                user = {
                    "id": user_id,
                    "name": "Sandy Sandbox",
                    "first_name": "Sandy",
                    "last_name": "Sandbox",
                    "initials": "SS",
                    "email": "sandy@sandbox.example",
                    "enabled": True,
                    "account_owner": True,
                    "clio_connect": False,
                    "subscription_type": "Attorney",
                    "rate": Decimal("250.00"),
                    "roles": ["Administrator"],
                    "time_zone": "Etc/UTC",
                    "phone_number": None,
                    "default_calendar_id": 1,
                }
                self.put("users", self.stamp(user, created=True))
                self.settings.setdefault("sandbox_user_id", user_id)
                self.save_settings()

    # persistence -----------------------------------------------------------------------------------

    def _open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS records (kind TEXT, id INTEGER, data TEXT, PRIMARY KEY (kind, id))"
        )
        db.execute("CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, data BLOB)")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, data TEXT)")
        for kind, ident, data in db.execute("SELECT kind, id, data FROM records"):
            self.tables[kind][ident] = json.loads(data, object_hook=_decode)
        for key, data in db.execute("SELECT key, data FROM blobs"):
            self.blobs[key] = bytes(data)
        for key, data in db.execute("SELECT key, data FROM meta"):
            if key == "settings":
                self.settings.update(json.loads(data))
            elif key == "sequences":
                self.sequences.update(json.loads(data))
        self._db = db

    def _write_meta(self) -> None:
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('settings', ?), ('sequences', ?)",
                (json.dumps(self.settings), json.dumps(dict(self.sequences))),
            )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # records ---------------------------------------------------------------------------------------

    def next_id(self, kind: str) -> int:
        with self.lock:
            self.sequences[kind] += 1
            self._write_meta()
            return self.sequences[kind]

    def put(self, kind: str, record: Record) -> Record:
        with self.lock:
            self.tables[kind][record["id"]] = record
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO records VALUES (?, ?, ?)",
                    (kind, record["id"], json.dumps(record, default=_encode)),
                )
            return record

    def get(self, kind: str, ident: int) -> Record | None:
        return self.tables[kind].get(ident)

    def remove(self, kind: str, ident: int) -> Record | None:
        with self.lock:
            record = self.tables[kind].pop(ident, None)
            if self._db is not None:
                self._db.execute("DELETE FROM records WHERE kind = ? AND id = ?", (kind, ident))
            return record

    def all(self, kind: str) -> list[Record]:
        with self.lock:
            return list(self.tables[kind].values())

    def put_blob(self, key: str, data: bytes) -> None:
        with self.lock:
            self.blobs[key] = data
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?)", (key, data))

    def save_settings(self) -> None:
        with self.lock:
            self._write_meta()

    def stamp(self, record: Record, *, created: bool = False) -> Record:
        """Set ``updated_at`` (and ``created_at``) and a new ``etag``: every change gets a new one."""
        now = iso(self.clock.now())
        if created:
            record["created_at"] = now
        record["updated_at"] = now
        record["_version"] = int(record.get("_version", 0)) + 1
        digest = hashlib.md5(f"{record['id']}:{record['_version']}:{now}".encode(), usedforsecurity=False)
        record["etag"] = f'"{digest.hexdigest()}"'
        return record

    @contextmanager
    def changing(self) -> Iterator[None]:
        with self.lock:
            yield

    def reset(self) -> None:
        with self.lock:
            self.tables.clear()
            self.sequences.clear()
            self.settings = dict(DEFAULT_SETTINGS)
            self.blobs.clear()
            self.requests_by_endpoint.clear()
            self.requests_by_token.clear()
            self.rate_limited_by_token.clear()
            self.clock.offset = timedelta()
            if self._db is not None:
                for table in ("records", "blobs", "meta"):
                    self._db.execute(f"DELETE FROM {table}")

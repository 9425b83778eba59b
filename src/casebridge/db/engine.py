"""Engine creation for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

WRITE_OPTION = "casebridge_write"
_HOLDS_WRITE_LOCK = "casebridge_holds_write_lock"
_WRITE_LOCK_TIMEOUT = 30.0


def redact_url(url: str) -> str:
    """The URL with any password hidden, safe for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_db_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, in_memory=parsed.database in (None, "", ":memory:"))
    kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": pool_size, "pool_pre_ping": True}
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, *, in_memory: bool) -> Engine:
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if in_memory:
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours (SQLAlchemy's
        # documented recipe), then set the pragmas every connection needs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # Writers of this process queue on a lock before BEGIN IMMEDIATE, so they are woken the moment the
    # previous writer finishes instead of polling in SQLite's busy handler (whose sleeps grow to 100 ms
    # and make the latency tail long and unfair). Other processes still meet the busy timeout.
    write_lock = threading.Lock()

    def _release(info: dict[str, Any]) -> None:
        if info.pop(_HOLDS_WRITE_LOCK, False):
            write_lock.release()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            if write_lock.acquire(timeout=_WRITE_LOCK_TIMEOUT):
                conn.info[_HOLDS_WRITE_LOCK] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(conn.info)
                raise
        else:
            conn.exec_driver_sql("BEGIN")

    @event.listens_for(engine, "commit")
    def _on_commit(conn: Any) -> None:
        _release(conn.info)

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Any) -> None:
        _release(conn.info)

    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            _release(record.info)  # a connection returned mid-transaction must not keep the lock

    return engine

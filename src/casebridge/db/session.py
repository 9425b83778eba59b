"""Sessions and the unit of work: one transaction that commits or rolls back as a whole.

A :class:`Database` holds two session factories over one engine: ``reader`` (plain ``BEGIN``) and
``writer`` (``BEGIN IMMEDIATE`` on SQLite, so a writer takes the lock when its transaction starts and
never fails on a lock upgrade). Both begin lazily, at the first statement, so a request that streams
an upload before touching the database holds no lock while the bytes arrive.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from casebridge.db.engine import WRITE_OPTION, create_db_engine

SessionFactory = sessionmaker[Session]


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader: SessionFactory = sessionmaker(bind=engine, expire_on_commit=False)
        self.writer: SessionFactory = sessionmaker(
            bind=engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10) -> Database:
        return cls(create_db_engine(url, pool_size=pool_size))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def unit_of_work(factory: SessionFactory) -> Iterator[Session]:
    """A session whose transaction commits when the block ends and rolls back if it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dialect_insert(session: Session) -> Any:
    """The dialect's ``insert`` (PostgreSQL's or SQLite's), for ``ON CONFLICT`` clauses, which both have."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert

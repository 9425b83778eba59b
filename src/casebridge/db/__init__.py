"""Database plumbing: engine creation, portable column types, migrations.

Invariants:
- The schema is made only by Alembic migrations (``casebridge db upgrade``), in tests too.
- SQLite runs in WAL mode with foreign keys on and a busy timeout; write transactions start with
  ``BEGIN IMMEDIATE`` so two writers never deadlock on a lock upgrade.
- One transaction per unit of work (request, job, CLI command): services and repositories only flush.
"""

from casebridge.db.engine import create_db_engine, redact_url
from casebridge.db.session import Database, SessionFactory, unit_of_work

__all__ = ["Database", "SessionFactory", "create_db_engine", "redact_url", "unit_of_work"]

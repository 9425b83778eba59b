"""The Alembic tree builds exactly the models' schema, and can go down and up again, on both databases."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from casebridge.db import migrate
from casebridge.models import Base
from tests.conftest import Backend


def _diffs(backend: Backend) -> list[object]:
    with backend.db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def test_migrations_match_models(backend: Backend) -> None:
    assert migrate.is_current(backend.db.engine)
    assert _diffs(backend) == []


def test_downgrade_to_base_and_upgrade_again(clean: Backend) -> None:
    engine = clean.db.engine
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(engine)
    assert migrate.is_current(engine)
    assert _diffs(clean) == []

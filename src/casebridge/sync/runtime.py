"""The sync environment of a process: one per database (the API, each worker, the CLI share it), holding
the entity specs, the connectors and their HTTP clients and token caches."""

from __future__ import annotations

import os
import signal
import threading
import weakref

from casebridge.config import Settings
from casebridge.connectors.clio import VENDOR, ClioConnector
from casebridge.connectors.clio.client import Runtime
from casebridge.db.session import Database
from casebridge.kit.crypto import SecretBox
from casebridge.sync import canonical
from casebridge.sync.engine import SyncEnv
from casebridge.sync.entities import EntitySpec
from casebridge.sync.local import LOCAL_CONTACTS, LOCAL_MATTERS

SPECS: dict[str, EntitySpec] = {
    "contact": EntitySpec("contact", canonical.CONTACT_FIELDS, LOCAL_CONTACTS, create_only=("kind",)),
    "matter": EntitySpec(
        "matter",
        canonical.MATTER_FIELDS,
        LOCAL_MATTERS,
        pull_only=("display_number",),
        references={"client": "contact"},
        coupled={"close_date": "status"},  # only a closed matter has a close date
    ),
}
# Test-only: name a crash point in this variable and the process kills itself there (SIGKILL), to
# prove that a crash at that moment loses nothing and duplicates nothing.
CRASH_ENV = "CASEBRIDGE_TEST_CRASH_AT"

_envs: weakref.WeakKeyDictionary[Database, SyncEnv] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def sync_env(db: Database, settings: Settings) -> SyncEnv:
    with _lock:
        env = _envs.get(db)
        if env is None:
            runtime = Runtime(
                db, SecretBox(settings.resolved_secret_key), timeout=settings.clio_timeout_seconds
            )
            env = SyncEnv(db, {VENDOR: ClioConnector(runtime)}, SPECS, crash_point=_crash_point)
            _envs[db] = env
        return env


def clio_runtime(env: SyncEnv) -> Runtime:
    connector = env.connectors[VENDOR]
    assert isinstance(connector, ClioConnector)
    return connector.runtime


def close_all() -> None:
    """Close every process-wide HTTP client (at shutdown; tests call it when they stop the sandbox)."""
    with _lock:
        envs = list(_envs.values())
    for env in envs:
        clio_runtime(env).close()

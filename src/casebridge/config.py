"""Configuration from the environment (prefix ``CASEBRIDGE_``).

Every setting has a safe default so ``casebridge demo`` runs on a fresh machine; production sets
``CASEBRIDGE_DATABASE_URL`` to PostgreSQL and ``CASEBRIDGE_DATA_DIR`` to durable storage.
"""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SECRET_KEY_FILE = "secret.key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CASEBRIDGE_", extra="ignore")

    database_url: str = "sqlite:///./casebridge.db"
    data_dir: Path = Path("./casebridge-data")
    secret_key: SecretStr | None = None
    # Uploads larger than this are refused with 413 before or while they stream.
    max_upload_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    # Trashed documents are purged (and their unreferenced blobs removed) after this many days.
    trash_retention_days: int = Field(default=30, ge=0)
    # How long an Idempotency-Key and its stored response are kept.
    idempotency_ttl_hours: int = Field(default=24, gt=0)
    # Size of the SQLAlchemy connection pool (PostgreSQL).
    db_pool_size: int = Field(default=10, gt=0)
    # The worker embedded in `casebridge serve` (off with --no-worker) and its threads.
    embedded_worker: bool = True
    worker_concurrency: int = Field(default=4, gt=0, le=64)
    # Seconds a claimed job is leased; a worker heartbeats every third of it.
    job_lease_seconds: float = Field(default=30.0, gt=0)
    # Where Clio (and other remote systems) reach this server, e.g. https://cb.firm.example: webhooks
    # are registered only when it is set; without it the sync polls.
    public_url: str | None = None
    # Seconds to wait for an answer from Clio's API before treating the request as failed.
    clio_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # Extra modules whose register(registry) adds job kinds (comma-separated).
    job_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("job_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @cached_property
    def resolved_secret_key(self) -> str:
        """The key that encrypts stored secrets: from the environment, else from (or generated into) the data dir."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / SECRET_KEY_FILE
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return key

    def ensure_dirs(self) -> None:
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]

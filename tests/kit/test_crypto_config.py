"""Stored-secret encryption and the secret key generated on first run."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from casebridge.config import SECRET_KEY_FILE, Settings
from casebridge.kit.crypto import SecretBox, SecretDecryptionError


def test_secret_key_generated_once_into_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = settings.resolved_secret_key
    path = tmp_path / "data" / SECRET_KEY_FILE
    assert path.read_text().strip() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 40
    assert Settings(data_dir=tmp_path / "data").resolved_secret_key == key


def test_explicit_secret_key_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key="from-the-environment")  # type: ignore[arg-type]
    assert settings.resolved_secret_key == "from-the-environment"
    assert not (tmp_path / SECRET_KEY_FILE).exists()


def test_round_trip_and_wrong_key() -> None:
    box = SecretBox("k1")
    token = box.encrypt("clio-refresh-token")
    assert "clio-refresh-token" not in token
    assert box.decrypt(token) == "clio-refresh-token"
    with pytest.raises(SecretDecryptionError, match="CASEBRIDGE_SECRET_KEY"):
        SecretBox("k2").decrypt(token)
    with pytest.raises(SecretDecryptionError):
        box.decrypt(token[:-4] + "AAAA")

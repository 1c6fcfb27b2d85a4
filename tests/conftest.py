"""Shared fixtures. Real servers (redis-server, moto, PostgreSQL) live in tests/support/."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings

pytest_plugins = [
    "tests.support.redis_server",
    "tests.support.moto_server",
    "tests.support.postgres_server",
]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Development settings rooted in a fresh temporary var directory."""
    for name in list(__import__("os").environ):
        if name.startswith("ROOMCAST_") and name != "ROOMCAST_TEST_DATABASE_URL":
            monkeypatch.delenv(name, raising=False)
    return Settings(var_dir=str(tmp_path / "var"))

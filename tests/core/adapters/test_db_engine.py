"""Engines, URLs and the database health check, on SQLite and a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from core.adapters.db.engine import (
    check_database,
    engine_for_url,
    make_engine,
    make_session_factory,
    normalize_url,
)
from core.errors import ConfigurationError, DependencyUnavailable, RoomcastError
from core.settings import DatabaseSettings, Settings
from tests.support.net import free_port


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/rc", "postgresql+psycopg://u:p@db:5432/rc"),
        ("postgresql://u@db/rc", "postgresql+psycopg://u@db/rc"),
        ("postgresql+psycopg://u@db/rc", "postgresql+psycopg://u@db/rc"),
        ("sqlite:////var/lib/roomcast/roomcast.db", "sqlite:////var/lib/roomcast/roomcast.db"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_urls_are_pinned_to_psycopg(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("mysql://u@db/rc", "'mysql' is not supported"),
        ("postgresql+asyncpg://u@db/rc", "driver 'asyncpg' is not supported"),
        ("not a url", "not a database URL"),
    ],
)
def test_unsupported_urls_are_configuration_errors(given: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        normalize_url(given)
    assert caught.value.message.startswith("ROOMCAST_DATABASE__URL: ")
    assert fragment in caught.value.message


def test_sqlite_engine_creates_its_directory_and_sets_pragmas(settings: Settings) -> None:
    assert not Path(settings.var_dir).exists()
    engine = make_engine(settings)
    try:
        assert Path(settings.var_dir).is_dir()
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 15_000
        check_database(engine)
        assert Path(settings.var_dir, "roomcast.db").is_file()
    finally:
        engine.dispose()


def test_migration_engines_leave_sqlite_foreign_keys_off(tmp_path: Path) -> None:
    engine = engine_for_url(f"sqlite:///{tmp_path / 'm.db'}", sqlite_foreign_keys=False)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_postgresql_engine_uses_psycopg_and_pre_ping(settings: Settings, postgres_url: str) -> None:
    configured = settings.model_copy(update={"database": DatabaseSettings(url=postgres_url)})
    engine = make_engine(configured)
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.pool._pre_ping is True  # no public accessor
        check_database(engine)
        sessions = make_session_factory(engine)
        with sessions() as session:
            assert (
                session.scalar(sa.text("SELECT current_setting('server_version_num')::int"))
                >= 150000
            )
    finally:
        engine.dispose()


def test_sessions_keep_objects_readable_after_commit(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        assert make_session_factory(engine).kw["expire_on_commit"] is False
    finally:
        engine.dispose()


def test_unreachable_postgresql_is_dependency_unavailable(settings: Settings) -> None:
    port = free_port()  # nothing listens here
    url = f"postgresql+psycopg://roomcast:hunter2@127.0.0.1:{port}/roomcast"
    engine = make_engine(settings.model_copy(update={"database": DatabaseSettings(url=url)}))
    try:
        with pytest.raises(DependencyUnavailable) as caught:
            check_database(engine)
    finally:
        engine.dispose()
    error = caught.value
    assert isinstance(error, RoomcastError)
    assert (error.dependency, error.code) == ("database", "dependency_unavailable")
    message = str(error)
    assert message.startswith(
        f"database: cannot query postgresql+psycopg://roomcast:***@127.0.0.1:{port}/"
    )
    assert "Connection refused" in message or "connection failed" in message
    assert "hunter2" not in message
    assert "\n" not in message and "sqlalche.me" not in message


def test_unopenable_sqlite_is_dependency_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory.db"
    directory.mkdir()
    engine = engine_for_url(f"sqlite:///{directory}")
    try:
        with pytest.raises(DependencyUnavailable, match="unable to open database file"):
            check_database(engine)
    finally:
        engine.dispose()

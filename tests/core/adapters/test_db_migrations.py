"""Alembic migrations on SQLite and on a real PostgreSQL: up, down, up again, and in step with
the models (autogenerate finds nothing to do)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from core.adapters.db import migrate
from core.adapters.db.engine import engine_for_url
from core.adapters.db.models import Base
from core.errors import DependencyUnavailable, InvalidInput
from tests.support.net import free_port

MODEL_TABLES = set(Base.metadata.tables)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend; the SQLite file's directory does not exist yet."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'not-yet' / 'roomcast.db'}"
    return str(request.getfixturevalue("postgres_database_url"))


def _tables(url: str) -> set[str]:
    engine = engine_for_url(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_models_define_every_table_of_the_design() -> None:
    assert MODEL_TABLES == {
        "users", "rooms", "room_memberships", "recordings", "recording_tracks",
        "recording_segments", "replays", "replay_outputs", "shows", "episodes", "clips",
        "webhook_endpoints", "webhook_deliveries",
    }  # fmt: skip


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert migrate.current(database_url) is None

    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head()
    assert _tables(database_url) == MODEL_TABLES | {"alembic_version"}

    migrate.downgrade(database_url)
    assert migrate.current(database_url) is None
    assert _tables(database_url) <= {"alembic_version"}

    migrate.upgrade(database_url, "head")
    assert migrate.current(database_url) == migrate.head()
    assert _tables(database_url) == MODEL_TABLES | {"alembic_version"}


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.head()


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = engine_for_url(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == [], f"models and migrations disagree: {differences}"


def test_current_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.db"
    assert migrate.current(f"sqlite:///{path}") is None
    assert not path.exists()


def test_an_unknown_revision_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        migrate.upgrade(f"sqlite:///{tmp_path / 'db.sqlite'}", "no-such-revision")
    assert caught.value.code == "invalid_revision"
    assert "no-such-revision" in caught.value.message


def test_migrating_an_unreachable_postgresql_is_dependency_unavailable() -> None:
    url = f"postgresql://roomcast:pw@127.0.0.1:{free_port()}/roomcast"
    with pytest.raises(DependencyUnavailable) as caught:
        migrate.upgrade(url)
    message = str(caught.value)
    assert message.startswith("database: cannot migrate postgresql+psycopg://roomcast:***@")
    assert "pw" not in message.replace("psycopg", "")
    assert "\n" not in message

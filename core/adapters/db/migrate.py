"""Alembic migrations, configured in code so the installed package needs no alembic.ini.

``upgrade`` / ``downgrade`` / ``current`` take a database URL (as ``Settings.database_url``
gives it). Connection failures become :class:`~core.errors.DependencyUnavailable`; an unknown
revision becomes :class:`~core.errors.InvalidInput`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from core.adapters.db.engine import describe_error, engine_for_url, normalize_url, sqlite_path
from core.errors import DependencyUnavailable, InvalidInput

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations.

    The URL travels in ``config.attributes`` rather than ``sqlalchemy.url`` because the ini
    option goes through configparser interpolation, which mangles ``%``-escaped passwords.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.attributes["url"] = normalize_url(url)
    return config


def head() -> str:
    """The newest revision shipped with this version of Roomcast."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return revision


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (creating a SQLite file if needed)."""
    _run(url, lambda config: command.upgrade(config, revision))


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base``: drop every table)."""
    _run(url, lambda config: command.downgrade(config, revision))


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at; ``None`` when it was never migrated."""
    parsed = normalize_url(url)
    path = sqlite_path(parsed)
    if path is not None and not path.exists():
        return None  # do not create an empty file just to look
    engine = engine_for_url(parsed, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise _unavailable(parsed, exc) from exc
    finally:
        engine.dispose()


def _run(url: str, action: Callable[[Config], None]) -> None:
    parsed = normalize_url(url)
    engine = engine_for_url(parsed, sqlite_foreign_keys=False, poolclass=NullPool)
    try:
        # Connect first so an unreachable server is told apart from a failing migration,
        # which propagates unchanged (it is a bug or a hand-edited schema, not an outage).
        try:
            connection = engine.connect()
        except OperationalError as exc:
            raise _unavailable(parsed, exc) from exc
        with connection:
            config = alembic_config(parsed)
            config.attributes["connection"] = connection
            try:
                action(config)
            except CommandError as exc:
                raise InvalidInput(f"migration: {exc}", code="invalid_revision") from exc
    finally:
        engine.dispose()


def _unavailable(url: URL, exc: BaseException) -> DependencyUnavailable:
    where = url.render_as_string(hide_password=True)
    return DependencyUnavailable("database", f"cannot migrate {where}: {describe_error(exc)}")

"""Engines and sessions for SQLite (the single-machine default) and PostgreSQL (psycopg 3).

Built from :class:`~core.settings.Settings` by each entry point; nothing here runs at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import ConfigurationError, DependencyUnavailable
from core.settings import Settings

#: How long SQLite waits on a locked database before failing (API and workers share the file).
SQLITE_BUSY_TIMEOUT_MS = 15_000
#: How long a PostgreSQL connection attempt may take before the database counts as unreachable.
POSTGRES_CONNECT_TIMEOUT_S = 10


def normalize_url(url: str | URL) -> URL:
    """Parse a database URL, pinning PostgreSQL to psycopg 3.

    ``postgres://`` and ``postgresql://`` (as Heroku-style providers hand them out) become
    ``postgresql+psycopg://``. Anything but SQLite and PostgreSQL raises
    :class:`ConfigurationError`.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"ROOMCAST_DATABASE__URL: not a database URL ({exc}); use sqlite:///PATH or"
            " postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        if driver not in ("", "psycopg"):
            raise ConfigurationError(
                f"ROOMCAST_DATABASE__URL: driver {driver!r} is not supported; use postgresql+psycopg://"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return parsed
    raise ConfigurationError(
        f"ROOMCAST_DATABASE__URL: {parsed.drivername!r} is not supported; use sqlite:///PATH or"
        " postgresql+psycopg://..."
    )


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for in-memory databases and other backends."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def engine_for_url(
    url: str | URL, *, echo: bool = False, sqlite_foreign_keys: bool = True, **kwargs: Any
) -> sa.Engine:
    """An engine for ``url`` with Roomcast's per-backend setup (see :func:`make_engine`).

    ``sqlite_foreign_keys=False`` is for migrations only: SQLite's batch migrations copy and drop
    tables, and with foreign keys on, dropping a parent table would cascade-delete children.
    """
    parsed = normalize_url(url)
    path = sqlite_path(parsed)
    if parsed.get_backend_name() == "sqlite":
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, echo=echo, **kwargs)
        event.listen(
            engine, "connect", _sqlite_foreign_keys_on if sqlite_foreign_keys else _sqlite_pragmas
        )
        return engine
    connect_args = {"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S, **kwargs.pop("connect_args", {})}
    return sa.create_engine(
        parsed, echo=echo, pool_pre_ping=True, connect_args=connect_args, **kwargs
    )


def make_engine(settings: Settings) -> sa.Engine:
    """The engine for ``settings.database_url``.

    SQLite: creates the parent directory; every connection gets ``journal_mode=WAL`` (readers
    do not block the writer), ``foreign_keys=ON`` (SQLite ignores ON DELETE otherwise) and a
    busy timeout. PostgreSQL: psycopg 3, ``pool_pre_ping`` so connections dropped by a server
    restart are replaced instead of failing the next request.
    """
    return engine_for_url(settings.database_url, echo=settings.database.echo)


def make_session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit (API responses)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def check_database(engine: sa.Engine) -> None:
    """Run ``SELECT 1``; raise :class:`DependencyUnavailable` with a one-line reason if it fails."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise DependencyUnavailable(
            "database", f"cannot query {where}: {describe_error(exc)}"
        ) from exc


def describe_error(exc: BaseException) -> str:
    """The driver's own message, on one line, without SQLAlchemy's SQL echo and links."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip() or type(original).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _sqlite_foreign_keys_on(dbapi_connection: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_connection, record, "PRAGMA foreign_keys=ON")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, *extra: str) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        for statement in extra:
            cursor.execute(statement)
        # Durable enough with WAL (a power cut may lose the last commits, never corrupt).
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()

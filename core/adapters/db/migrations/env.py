"""Alembic environment for Roomcast.

Called two ways: from :mod:`core.adapters.db.migrate`, which passes an open connection in
``config.attributes["connection"]``; or by a developer running ``alembic`` at the repository
root, where the URL comes from ``-x url=...``, ``sqlalchemy.url`` in alembic.ini, or else the
usual ``ROOMCAST_*`` settings.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from core.adapters.db.engine import engine_for_url, normalize_url
from core.adapters.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    given = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    if given:
        return str(normalize_url(given).render_as_string(hide_password=False))
    from_ini = config.get_main_option("sqlalchemy.url")
    if from_ini:
        return from_ini
    from core.settings import load_settings  # only for hand-run `alembic`; never at import

    return load_settings().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters tables by copy-and-rename; batch mode does that for us.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade head --sql``)."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = engine_for_url(_url(), sqlite_foreign_keys=False, poolclass=NullPool)
    try:
        with engine.connect() as fresh:
            _configure(fresh)
    finally:
        engine.dispose()


if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_offline()
else:
    run_online()

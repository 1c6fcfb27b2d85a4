"""What tasks work with: settings, database sessions, storage and a job queue, per process.

``workers.app.create_app`` keeps the :class:`~core.settings.Settings` it was built with in the
app's configuration (``roomcast_settings``); :func:`worker_context` builds the rest on first use
*in the process that runs tasks*, so a prefork pool child never inherits its parent's database
connections.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa
from celery import Celery
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.storage_factory import build_storage
from core.errors import ConfigurationError, DependencyUnavailable
from core.ports import JobQueue
from core.settings import Settings
from core.storage import Storage

#: Key of the settings in ``app.conf``.
SETTINGS_KEY: Final = "roomcast_settings"

#: Errors a task retries with backoff: storage or Redis unreachable (translated at the adapter
#: edge), or the database unreachable while it restarts (SQLAlchemy's OperationalError).
TRANSIENT_ERRORS: Final = (DependencyUnavailable, OperationalError)


@dataclass
class WorkerContext:
    """One process's dependencies."""

    settings: Settings
    engine: sa.Engine
    sessions: sessionmaker[Session]
    storage: Storage
    queue: JobQueue
    pid: int


_contexts: dict[int, WorkerContext] = {}


def worker_context(app: Celery) -> WorkerContext:
    """The context of ``app`` in this process, built on first use."""
    key = id(app)
    found = _contexts.get(key)
    if found is not None and found.pid == os.getpid():
        return found
    settings = app.conf.get(SETTINGS_KEY)
    if not isinstance(settings, Settings):
        raise ConfigurationError(
            "this Celery app was not built by workers.app.create_app (no roomcast settings)"
        )
    engine = make_engine(settings)
    context = WorkerContext(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        storage=build_storage(settings),
        queue=CeleryJobQueue(settings),
        pid=os.getpid(),
    )
    _contexts[key] = context
    return context

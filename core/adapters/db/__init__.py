"""Relational database adapter: models, engines and sessions, Alembic migrations.

Entry points build ``make_engine(settings)`` once, run ``migrate.upgrade(settings.database_url)``
at start-up (or ``roomcast db upgrade``), and hand ``make_session_factory(engine)`` down.
"""

"""Entry point for Celery's own CLI: ``celery -A workers.celery_entry worker``.

``app`` is built on first access (PEP 562 ``__getattr__``), so importing this module never
reads settings; an invalid variable is reported as one line and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import Celery

from core.errors import ConfigurationError
from core.settings import load_settings
from workers.app import create_app

_app: Celery | None = None


def get_app() -> Celery:
    """Build the worker app from the environment once."""
    global _app
    if _app is None:
        try:
            settings = load_settings()
        except ConfigurationError as exc:
            print(f"roomcast worker: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        _app = create_app(settings)
    return _app


def __getattr__(name: str) -> Any:
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

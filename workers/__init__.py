"""Celery workers: the app factory (``workers.app``) and tasks (``workers.tasks``).

Run with ``roomcast worker`` or ``celery -A workers.celery_entry worker``.
"""

import core  # noqa: F401 - first: sets up numpy's BLAS before numpy loads (core/__init__.py)

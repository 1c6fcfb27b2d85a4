"""Celery workers: the app factory (``workers.app``) and tasks (``workers.tasks``).

Run with ``roomcast worker`` or ``celery -A workers.celery_entry worker``.
"""

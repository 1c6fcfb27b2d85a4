"""Celery tasks, each registered under an explicit name from ``core.jobs``.

Tasks are ``shared_task`` s so they bind to whichever app ``workers.app.create_app`` built;
importing this package registers them all.
"""

from workers.tasks import clips, follow, ping, postprod, webhooks

__all__ = ["clips", "follow", "ping", "postprod", "webhooks"]

"""The worker's Celery app factory."""

from __future__ import annotations

from celery import Celery

from core import jobs
from core.adapters.celery_config import make_celery
from core.settings import Settings

#: Modules whose import registers tasks on the current app.
TASK_MODULES = ("workers.tasks",)
#: What a worker consumes unless told otherwise. Not the live queue: a follower holds its pool
#: process for as long as its room is live, so live-queue workers are started on purpose, with
#: a pool process per room recorded at once (``roomcast up`` starts one with two).
WORKER_QUEUES: tuple[str, ...] = (jobs.DEFAULT_QUEUE, jobs.MEDIA_QUEUE)


def create_app(settings: Settings) -> Celery:
    """A Celery app with every Roomcast task registered, configured from ``settings``."""
    app = make_celery(settings, "roomcast")
    # roomcast_settings: read by workers.context.worker_context in the processes running tasks.
    app.conf.update(include=list(TASK_MODULES), roomcast_settings=settings)
    # shared_task binds to every app, but only once the task module has been imported.
    import workers.tasks  # noqa: F401

    return app


def worker_argv(
    settings: Settings,
    *,
    concurrency: int = 1,
    loglevel: str | None = None,
    queues: tuple[str, ...] = WORKER_QUEUES,
    beat: bool = False,
) -> list[str]:
    """Arguments for ``app.worker_main``: ``queues`` (default: :data:`WORKER_QUEUES`),
    ``concurrency`` pool processes. The node name carries the queues, so two workers on one
    host do not clash.
    ``beat`` embeds the periodic scheduler (the webhook sweep): run it in exactly one worker;
    its schedule file lives under the var directory."""
    for queue in queues:
        jobs.check_queue(queue)
    if not queues:
        raise ValueError("a worker needs at least one queue")
    name = "roomcast" if tuple(queues) == WORKER_QUEUES else "roomcast-" + "-".join(queues)
    return [
        "worker",
        "--queues", ",".join(queues),
        "--concurrency", str(concurrency),
        "--loglevel", (loglevel or settings.log_level).upper(),
        "--hostname", f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
    ] + (
        ["--beat", "--schedule", str(settings.var_path.resolve() / "celerybeat-schedule")]
        if beat
        else []
    )  # fmt: skip

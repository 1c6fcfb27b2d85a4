"""workers.app.worker_argv: queues, node names, and the one worker that runs the scheduler."""

from __future__ import annotations

from core import jobs
from core.adapters.celery_config import celery_config
from core.settings import Settings
from workers.app import worker_argv


def test_one_queue_worker_is_named_after_its_queue(settings: Settings) -> None:
    argv = worker_argv(settings, queues=(jobs.MEDIA_QUEUE,))
    assert argv[argv.index("--queues") + 1] == "media"
    assert argv[argv.index("--hostname") + 1] == "roomcast-media@%h"
    assert "--beat" not in argv


def test_beat_runs_with_a_schedule_file_under_the_var_dir(settings: Settings) -> None:
    argv = worker_argv(settings, queues=(jobs.DEFAULT_QUEUE,), beat=True)
    schedule = argv[argv.index("--schedule") + 1]
    assert "--beat" in argv
    assert schedule.startswith(str(settings.var_path.resolve()))


def test_the_beat_schedule_sweeps_webhooks(settings: Settings) -> None:
    entries = celery_config(settings)["beat_schedule"].values()
    assert [(e["task"], e["schedule"]) for e in entries] == [
        (jobs.WEBHOOK_SWEEP, jobs.SWEEP_INTERVAL_SECONDS)
    ]


def test_workers_leave_the_live_queue_unless_asked(settings: Settings) -> None:
    argv = worker_argv(settings)
    assert argv[argv.index("--queues") + 1] == "default,media"
    live = worker_argv(settings, queues=(jobs.LIVE_QUEUE,), concurrency=2)
    assert live[live.index("--queues") + 1] == "live"
    assert live[live.index("--concurrency") + 1] == "2"
    assert live[live.index("--hostname") + 1] == "roomcast-live@%h"

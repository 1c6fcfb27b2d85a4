"""A real worker process (``celery -A workers.celery_entry worker``) over a real redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import jobs
from core.adapters.celery_config import celery_config
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.subprocesses import stop_process_group
from core.errors import DependencyUnavailable, InvalidInput
from core.ports import JobQueue
from core.settings import Settings
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def start_worker(redis_url: str, var_dir: Path) -> subprocess.Popen[bytes]:
    """``celery -A workers.celery_entry worker`` as the deployment runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env.update(ROOMCAST_REDIS__URL=redis_url, ROOMCAST_VAR_DIR=str(var_dir))
    command = [
        sys.executable, "-m", "celery", "-A", "workers.celery_entry", "worker",
        "--queues", "default,media", "--concurrency", "1", "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--hostname", f"test-{os.getpid()}@%h",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


@pytest.fixture
def worker_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": redis_url})})


@pytest.fixture
def queue(worker_settings: Settings) -> Iterator[CeleryJobQueue]:
    queue = CeleryJobQueue(worker_settings)
    yield queue
    queue.close()


@pytest.fixture
def worker(worker_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(worker_settings.redis_url, tmp_path / "worker-var")
    yield process
    stop_process_group(process, signal.SIGTERM, timeout=10)


def wait_for_pong(queue: CeleryJobQueue, within: float) -> float:
    """Ping until a worker answers; return how long it took."""
    start = time.monotonic()
    while True:
        try:
            queue.ping_worker(timeout=2.0)
            return time.monotonic() - start
        except DependencyUnavailable:
            if time.monotonic() - start > within:
                raise


def test_config_is_json_only_with_late_acks_and_long_visibility(settings: Settings) -> None:
    config = celery_config(settings)
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    visibility = config["broker_transport_options"]["visibility_timeout"]
    assert visibility > jobs.MEDIA_LIMITS.hard_seconds > config["task_time_limit"]
    assert [q.name for q in config["task_queues"]] == ["default", "media"]
    assert config["broker_url"] == "redis://127.0.0.1:6390/0"


def test_visibility_timeout_exceeds_every_hard_limit() -> None:
    limits = [jobs.TimeLimits(5, 10), jobs.TimeLimits(50, 700), jobs.TimeLimits(1, 2)]
    assert jobs.visibility_timeout(*limits, margin_seconds=1) == 701
    with pytest.raises(ValueError):
        jobs.TimeLimits(10, 10)
    with pytest.raises(ValueError):
        jobs.visibility_timeout()


def test_ping_without_a_worker_names_the_worker(queue: CeleryJobQueue) -> None:
    assert isinstance(queue, JobQueue)
    start = time.monotonic()
    with pytest.raises(DependencyUnavailable) as info:
        queue.ping_worker(timeout=0.5)
    assert info.value.dependency == "worker"
    assert "roomcast.ping" in str(info.value)
    assert time.monotonic() - start < 3


def test_unknown_queue_is_refused_before_sending(queue: CeleryJobQueue) -> None:
    with pytest.raises(InvalidInput) as info:
        queue.enqueue(jobs.PING, queue="medai")
    assert info.value.code == "unknown_queue"


@pytest.mark.slow
def test_real_worker_answers_ping_and_runs_tasks_by_name(
    queue: CeleryJobQueue, worker: subprocess.Popen[bytes]
) -> None:
    startup = wait_for_pong(queue, within=30)
    assert worker.poll() is None
    assert startup < 30
    job_id = queue.enqueue(jobs.PING)
    result = queue._app.AsyncResult(job_id)  # the sender's own app reads the result
    assert result.get(timeout=10) == jobs.PONG
    # The media queue is consumed by the same worker.
    media_id = queue.enqueue(jobs.PING, queue=jobs.MEDIA_QUEUE)
    assert queue._app.AsyncResult(media_id).get(timeout=10) == jobs.PONG


def test_enqueue_with_redis_down_is_dependency_unavailable(settings: Settings) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    down = CeleryJobQueue(settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": closed})}))
    start = time.monotonic()
    with pytest.raises(DependencyUnavailable) as info:
        down.enqueue(jobs.PING)
    assert info.value.dependency == "redis"
    assert time.monotonic() - start < 15
    with pytest.raises(DependencyUnavailable) as info:
        down.ping_worker(timeout=0.5)
    assert info.value.dependency == "worker"
    down.close()

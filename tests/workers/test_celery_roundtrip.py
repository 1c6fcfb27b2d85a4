"""A real worker process (``celery -A workers.celery_entry worker``) over a real redis-server."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core import jobs
from core.adapters.celery_config import celery_config
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.redis_process import RedisProcess
from core.errors import DependencyUnavailable, InvalidInput
from core.ports import JobQueue
from core.settings import Settings
from tests.support.celery_worker import start_worker, stop_worker, wait_for_pong
from tests.support.net import free_port


@pytest.fixture
def worker_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"url": redis_url})}
    )


@pytest.fixture
def queue(worker_settings: Settings) -> Iterator[CeleryJobQueue]:
    queue = CeleryJobQueue(worker_settings)
    yield queue
    queue.close()


@pytest.fixture
def worker(worker_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(worker_settings.redis_url, tmp_path / "worker-var")
    yield process
    stop_worker(process)


def test_config_is_json_only_with_late_acks_and_long_visibility(settings: Settings) -> None:
    config = celery_config(settings)
    assert config["accept_content"] == ["json"]
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    visibility = config["broker_transport_options"]["visibility_timeout"]
    assert visibility > jobs.MEDIA_LIMITS.hard_seconds > config["task_time_limit"]
    assert [q.name for q in config["task_queues"]] == ["default", "media", "live"]
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


def wait_until_consumed(url: str, queue: str, within: float) -> None:
    """Until the queue's list is empty and nothing is left unacknowledged (acks_late)."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + within
    try:
        while client.llen(queue) or client.hlen("unacked"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"queue {queue!r} was not consumed within {within} s")
            time.sleep(0.05)
    finally:
        client.close()


def test_enqueue_waits_in_redis_until_a_worker_runs_it(
    queue: CeleryJobQueue, worker_settings: Settings, tmp_path: Path
) -> None:
    job_id = queue.enqueue(jobs.PING, queue=jobs.MEDIA_QUEUE)
    assert len(job_id) == 36
    client = redis.Redis.from_url(worker_settings.redis_url)
    assert client.llen(jobs.MEDIA_QUEUE) == 1
    assert client.llen(jobs.DEFAULT_QUEUE) == 0
    client.close()
    worker = start_worker(worker_settings.redis_url, tmp_path / "worker-var")
    try:
        wait_until_consumed(worker_settings.redis_url, jobs.MEDIA_QUEUE, within=30)
        assert worker.poll() is None
    finally:
        stop_worker(worker)


@pytest.mark.slow
def test_real_worker_answers_ping_on_both_queues(
    queue: CeleryJobQueue, worker: subprocess.Popen[bytes]
) -> None:
    startup = wait_for_pong(queue, within=30)
    assert worker.poll() is None
    assert startup < 30
    queue.ping_worker(timeout=5.0, queue=jobs.MEDIA_QUEUE)
    queue.ping_worker(timeout=5.0)


@pytest.mark.slow
def test_ping_recovers_after_a_redis_restart(
    queue: CeleryJobQueue, worker: subprocess.Popen[bytes], redis_server: RedisProcess
) -> None:
    wait_for_pong(queue, within=30)
    redis_server.stop()
    with pytest.raises(DependencyUnavailable) as info:
        queue.ping_worker(timeout=1.0)
    assert info.value.dependency == "worker"
    assert "\n" not in info.value.message
    redis_server.start()
    wait_for_pong(queue, within=30)  # the worker reconnects and a new ping gets through


def test_enqueue_with_redis_down_is_dependency_unavailable(settings: Settings) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    down = CeleryJobQueue(
        settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": closed})})
    )
    start = time.monotonic()
    with pytest.raises(DependencyUnavailable) as info:
        down.enqueue(jobs.PING)
    assert info.value.dependency == "redis"
    assert time.monotonic() - start < 15
    with pytest.raises(DependencyUnavailable) as info:
        down.ping_worker(timeout=0.5)
    assert info.value.dependency == "worker"
    down.close()

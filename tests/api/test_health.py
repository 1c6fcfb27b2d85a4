"""/healthz and /readyz against real dependencies: SQLite and local storage in tmp, a real
redis-server and a real Celery worker process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes.health import CheckResult, readiness
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.redis_process import RedisProcess
from core.settings import Settings
from tests.support.celery_worker import start_worker, stop_worker, wait_for_pong


@pytest.fixture
def app_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"url": redis_url})}
    )


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as client:
        yield client


@pytest.fixture
def worker(app_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_worker(app_settings.redis_url, tmp_path / "worker-var")
    queue = CeleryJobQueue(app_settings)
    try:
        wait_for_pong(queue, within=30)
        yield process
    finally:
        queue.close()
        stop_worker(process)


def test_healthz_answers_without_dependencies(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_verdict_is_pure() -> None:
    ok = CheckResult("database", True, "ok", 1.234)
    down = CheckResult("redis", False, "redis: refused", 2.0)
    assert readiness([ok]) == (
        200,
        {
            "status": "ready",
            "checks": {"database": {"ok": True, "detail": "ok", "ms": 1.23}},
            "failing": [],
        },
    )
    status, body = readiness([ok, down])
    assert status == 503
    assert body["failing"] == ["redis"]
    assert body["checks"]["redis"] == {"ok": False, "detail": "redis: refused", "ms": 2.0}


@pytest.mark.slow
def test_readyz_is_200_with_every_dependency_up(
    client: TestClient, worker: subprocess.Popen[bytes]
) -> None:
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert list(body["checks"]) == ["database", "redis", "storage", "worker"]
    for name, check in body["checks"].items():
        assert check["ok"] is True, name
        assert check["detail"] == "ok"
        assert 0 <= check["ms"] < 4000


@pytest.mark.slow
def test_readyz_is_503_naming_redis_when_redis_is_stopped(
    client: TestClient, worker: subprocess.Popen[bytes], redis_server: RedisProcess
) -> None:
    assert client.get("/readyz").status_code == 200
    redis_server.stop()
    try:
        start = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - start
    finally:
        redis_server.start()
    body = response.json()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "redis" in body["failing"]
    assert body["checks"]["redis"]["ok"] is False
    assert "127.0.0.1" in body["checks"]["redis"]["detail"]
    assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]
    assert elapsed < 6, "readiness must answer within its deadlines"


def test_readyz_is_503_naming_worker_when_no_worker_runs(client: TestClient) -> None:
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["worker"]
    assert "roomcast.ping" in body["checks"]["worker"]["detail"]

"""A real ``redis-server`` for the session, on a free port in a temporary directory.

``redis_server`` yields the :class:`core.adapters.redis_process.RedisProcess` itself: ``.url``,
``.stop()`` and ``.start()`` (restart on the same port; tests that stop it must start it again,
and the fixture restarts it if they did not). ``redis_url`` flushes the database per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core.adapters.redis_process import RedisProcess


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """The session's redis-server on 127.0.0.1."""
    data_dir: Path = tmp_path_factory.mktemp("redis")
    server = RedisProcess("redis-server", 0, data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> Iterator[str]:
    """The URL of the running session Redis, emptied before the test."""
    redis_server.start()  # idempotent; revives it if an earlier test stopped it
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url
    redis_server.start()

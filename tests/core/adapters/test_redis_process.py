"""RedisProcess: a real redis-server on 127.0.0.1 whose data survives a restart (AOF)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from core.adapters.redis_process import RedisProcess, ping_redis
from core.errors import DependencyUnavailable


def test_data_survives_a_restart_and_only_loopback_is_bound(tmp_path: Path) -> None:
    with RedisProcess("redis-server", 0, tmp_path / "redis") as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url)
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.set("room:1", "live")
        client.close()
        first_pid = server.pid
        server.stop()
        with pytest.raises(DependencyUnavailable):
            ping_redis(server.url, timeout=0.5)
        server.start()
        assert server.pid != first_pid
        client = redis.Redis.from_url(server.url)
        assert client.get("room:1") == b"live"
        client.close()
    assert server.pid is None
    assert (tmp_path / "redis" / "appendonlydir").is_dir()


def test_busy_port_and_missing_binary_are_clear(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DependencyUnavailable) as info:
            RedisProcess("redis-server", port, tmp_path).start()
    assert info.value.dependency == "redis"
    assert f"port {port}" in info.value.message
    with pytest.raises(DependencyUnavailable) as info:
        RedisProcess("no-such-redis-server", 0, tmp_path).start()
    assert "redis-server" in info.value.message and "ROOMCAST_REDIS__URL" in info.value.message

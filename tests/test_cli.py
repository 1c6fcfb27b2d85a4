"""The ``roomcast`` console script: exit codes and one-line errors, run as a real process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.net import free_port

ROOMCAST = str(Path(sys.executable).with_name("roomcast"))


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    clean.update(
        ROOMCAST_VAR_DIR=str(tmp_path / "var"),
        ROOMCAST_API__PORT=str(free_port()),
        ROOMCAST_REDIS__PORT=str(free_port()),
    )
    clean.update(env)
    return subprocess.run(
        [ROOMCAST, *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.parametrize("command", ["up", "api", "worker", "migrate", "live"])
def test_invalid_setting_is_one_line_naming_the_variable_and_exit_2(
    command: str, tmp_path: Path
) -> None:
    result = run([command], tmp_path, ROOMCAST_API__PORT="eighty")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"roomcast {command}: ROOMCAST_API__PORT: ")
    assert not (tmp_path / "var").exists(), "nothing may be started on invalid settings"


def test_production_placeholder_secret_is_refused(tmp_path: Path) -> None:
    result = run(["up"], tmp_path, ROOMCAST_MODE="production")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "ROOMCAST_AUTH__SECRET_KEY" in result.stderr


def test_live_serves_healthz_and_the_signaling_route(tmp_path: Path) -> None:
    import json
    import signal
    import urllib.request

    from tests.support.net import wait_for_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env.update(ROOMCAST_VAR_DIR=str(tmp_path / "var"), ROOMCAST_LIVE__PORT=str(port))
    process = subprocess.Popen(
        [ROOMCAST, "live"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for_port(port, timeout=30)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert json.load(answer) == {"status": "ok", "rooms": 0}
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        with (
            connect(f"ws://127.0.0.1:{port}/v1/rooms/r1/ws?token=bad") as ws,
            pytest.raises(ConnectionClosed) as closed,
        ):
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_migrate_creates_the_embedded_database(tmp_path: Path) -> None:
    result = run(["migrate"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("database at revision ")
    assert (tmp_path / "var" / "roomcast.db").is_file()


def test_up_with_busy_redis_port_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(["up"], tmp_path, ROOMCAST_REDIS__PORT=str(port))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("roomcast up: redis: ")
    assert f"port {port}" in last and "ROOMCAST_REDIS__PORT" in last
    assert "Traceback" not in result.stderr


def test_up_with_unreachable_redis_url_fails_in_one_line(tmp_path: Path) -> None:
    result = run(["up"], tmp_path, ROOMCAST_REDIS__URL=f"redis://127.0.0.1:{free_port()}/0")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("roomcast up: redis: ")
    assert "Traceback" not in result.stderr


def test_up_without_redis_binary_names_redis_server(tmp_path: Path) -> None:
    result = run(["up"], tmp_path, ROOMCAST_REDIS__SERVER_BINARY="/nonexistent/redis-server")
    assert result.returncode == 1
    assert "redis-server executable" in result.stderr
    assert "Traceback" not in result.stderr


def test_up_with_busy_api_port_fails_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(["up"], tmp_path, ROOMCAST_API__PORT=str(port))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"roomcast up: api: cannot listen on 127.0.0.1:{port}")
    assert not (tmp_path / "var" / "redis").exists()

"""Run a private ``redis-server`` for the single-machine setup and for tests.

Bound to 127.0.0.1 only, append-only file on, data under a directory we own. The process gets
its own process group so stopping it never signals our own group, and it is told to die with
its parent (Linux) so a killed supervisor leaves no Redis behind.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import redis

from core.adapters.subprocesses import die_with_parent, stop_process_group
from core.errors import DependencyUnavailable

STARTUP_TIMEOUT_SECONDS = 10.0


def ping_redis(url: str, timeout: float = 1.0) -> None:
    """PING the Redis at ``url``; raise ``DependencyUnavailable("redis", ...)`` if it fails."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        if not client.ping():
            raise DependencyUnavailable("redis", f"{_safe(url)} did not answer PING")
    except redis.RedisError as exc:
        raise DependencyUnavailable("redis", f"{_safe(url)}: {exc}") from exc
    finally:
        client.close()


def _safe(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As redis-server does: connections in TIME_WAIT from a previous run do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A ``redis-server`` child on 127.0.0.1:``port`` with its data and AOF in ``data_dir``.

    Use as a context manager, or call :meth:`start` and :meth:`stop` (both may be called again
    to restart on the same port with the same data). ``port=0`` picks a free port once.
    Start it from a long-lived thread (normally the main one): on Linux the server is stopped
    when the thread that started it exits.
    """

    def __init__(self, binary: str, port: int, data_dir: Path | str) -> None:
        self.binary = binary
        self.port = port or _free_port()
        self.data_dir = Path(data_dir)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self) -> None:
        """Start the server and wait until it answers PING; raise ``DependencyUnavailable``."""
        if self._process is not None and self._process.poll() is None:
            return
        executable = shutil.which(self.binary)
        if executable is None:
            raise DependencyUnavailable(
                "redis",
                f"redis-server executable {self.binary!r} not found; install redis-server"
                " or set ROOMCAST_REDIS__URL to an existing Redis",
            )
        if not _port_is_free(self.port):
            raise DependencyUnavailable(
                "redis",
                f"cannot start redis-server: port {self.port} on 127.0.0.1 is in use; set"
                " ROOMCAST_REDIS__PORT to a free port or ROOMCAST_REDIS__URL to that Redis",
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            executable,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.log_path.resolve()),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call, no locks taken
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        process = self._process
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        last_error = "no answer"
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                self._process = None
                raise DependencyUnavailable(
                    "redis", f"redis-server exited at start: {self._last_log_line()}"
                )
            try:
                ping_redis(self.url, timeout=0.5)
                return
            except DependencyUnavailable as exc:
                last_error = exc.message
            time.sleep(0.05)
        self.stop()
        raise DependencyUnavailable(
            "redis",
            f"redis-server did not answer PING within {STARTUP_TIMEOUT_SECONDS:g} s ({last_error})",
        )

    def _last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no log"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis fsyncs its AOF and exits), SIGKILL after ``timeout``; idempotent."""
        process, self._process = self._process, None
        if process is not None:
            stop_process_group(process, signal.SIGTERM, timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

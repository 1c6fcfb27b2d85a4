"""A private PostgreSQL server a test can stop and start again (same port, same data), built
with the helpers of tests/support/postgres_server.py (whose session server must stay up)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.net import free_port
from tests.support.postgres_server import (
    DATABASE,
    SERVER_USER,
    _as_server_user,
    _bin_dir,
    _run,
    create_database,
)


class PostgresProcess:
    """initdb into a temporary directory; :meth:`start`, :meth:`stop` (fast shutdown)."""

    def __init__(self) -> None:
        self.bin_dir = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="roomcast-pg-fault-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = free_port()
        _run([*_as_server_user(), str(self.bin_dir / "initdb"), "-D", str(self.data),
              "-U", SERVER_USER, "--auth=trust", "--no-sync", "--no-locale", "-E", "UTF8"])  # fmt: skip
        self.url = ""

    def _ctl(self, *args: str) -> None:
        _run([*_as_server_user(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args])

    def start(self) -> None:
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c full_page_writes=off"
            " -c shared_buffers=16MB -c max_connections=40"
        )
        self._ctl("-l", str(self.log), "-w", "-t", "60", "-o", options, "start")
        if not self.url:
            server = f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/postgres"
            self.url = create_database(server, DATABASE)

    def stop(self) -> None:
        """Fast shutdown: open sessions are disconnected, committed data stays."""
        self._ctl("-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run([*_as_server_user(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "-w", "stop"], capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)

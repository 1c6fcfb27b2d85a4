"""A real live node in its own process (uvicorn on 127.0.0.1), shared by the live and hardening tests.

:func:`running_live_node` starts ``uvicorn --factory live.node:app_from_env`` with loopback-only
ICE, no ICE server and a fresh signing secret, waits for ``/healthz`` and yields a
:class:`LiveNodeProcess` that issues join tokens the node accepts. ``extra_env`` sets more
``ROOMCAST_*`` variables (room limits, a cluster's Redis and node role); ``app`` picks another
uvicorn factory (``live.cluster:app_from_env``) and ``secret`` a signing secret shared by the
nodes of one cluster. The node announces its own URL (``ROOMCAST_RTC__PUBLIC_URL``). It is
stopped (SIGTERM, then SIGKILL) on exit.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from core.adapters.subprocesses import die_with_parent, stop_process_group
from core.rooms import Role
from core.settings import Settings
from core.tokens import issue_join_token
from tests.support.net import free_port, wait_for_port


@dataclass
class LiveNodeProcess:
    base_url: str
    settings: Settings
    log: Path
    process: subprocess.Popen[bytes]

    def token(self, room: str, user: str, role: Role = Role.LISTENER) -> str:
        return issue_join_token(
            self.settings, room_id=room, user_id=user, display_name=user.title(), role=role
        )

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` on the node: (status, body), error statuses included."""
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=5) as answer:
            body: dict[str, Any] = json.loads(answer.read())
            return body

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@contextmanager
def running_live_node(
    settings: Settings,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    app: str = "live.node:app_from_env",
    secret: str | None = None,
) -> Iterator[LiveNodeProcess]:
    secret = secret or secrets.token_urlsafe(32)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")},
        "ROOMCAST_VAR_DIR": str(workdir / "var"),
        "ROOMCAST_AUTH__SECRET_KEY": secret,
        "ROOMCAST_RTC__HOST_ADDRESSES": "127.0.0.1",
        "ROOMCAST_RTC__ICE_SERVERS": "",
        "ROOMCAST_RTC__PUBLIC_URL": f"http://127.0.0.1:{port}",
        **(extra_env or {}),
    }
    log = workdir / "live.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                app,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (only prctl: fork-safe)
        )
    try:
        wait_for_port(port, timeout=30)
        auth = settings.auth.model_copy(update={"secret_key": SecretStr(secret)})
        node = LiveNodeProcess(
            f"http://127.0.0.1:{port}", settings.model_copy(update={"auth": auth}), log, process
        )
        node.health()
        yield node
    finally:
        stop_process_group(process, signal.SIGTERM, timeout=10)

"""A real Celery worker process for tests, as deployments start it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.subprocesses import stop_process_group
from core.errors import DependencyUnavailable

ROOT = Path(__file__).resolve().parents[2]


def start_worker(
    redis_url: str, var_dir: Path, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``celery -A workers.celery_entry worker`` on both queues, concurrency 1, own group.

    ``extra_env`` adds ``ROOMCAST_*`` settings (e.g. a webhook allow-list for 127.0.0.1).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env.update(ROOMCAST_REDIS__URL=redis_url, ROOMCAST_VAR_DIR=str(var_dir))
    env.update(extra_env or {})
    command = [
        sys.executable, "-m", "celery", "-A", "workers.celery_entry", "worker",
        "--queues", "default,media", "--concurrency", "1", "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--hostname", f"test-{os.getpid()}@%h",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown, SIGKILL to the whole group after 10 s."""
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

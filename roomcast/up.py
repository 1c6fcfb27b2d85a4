"""``roomcast up``: the whole service on one machine, supervised by one process.

Order of start: migrations, Redis (our own unless ``ROOMCAST_REDIS__URL`` is set), a storage
check, three Celery worker subprocesses (the default queue and the media queue with one pool
process each, so an hour of mixing never delays a readiness ping, a webhook or a clip; the live
queue with two, for the followers that render rooms while they are live), then the API in this process, with the live node's signaling route mounted on it. Stop, on
Ctrl-C or SIGTERM, in reverse: API, workers, Redis.
Children run in their own process groups (a terminal's Ctrl-C reaches only us, so we decide the
order), are told to die with us (Linux), and are killed when they do not stop in time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import ExitStack
from types import FrameType
from typing import Final

import uvicorn

from api.app import create_app
from core import jobs
from core.adapters.db.migrate import upgrade
from core.adapters.redis_process import RedisProcess, ping_redis
from core.adapters.storage_factory import build_storage
from core.adapters.subprocesses import (
    die_with_parent,
    die_with_parent_killed,
    stop_process_group,
)
from core.errors import DependencyUnavailable
from core.settings import Settings
from live.node import LiveNode, mount_live
from workers.app import worker_argv

WORKER_STOP_SECONDS: Final = 8.0
REDIS_STOP_SECONDS: Final = 5.0


class Shutdown(BaseException):
    """Raised from our signal handler so every ``finally`` below runs."""


def with_redis_url(settings: Settings, url: str) -> Settings:
    """``settings`` pointing at the Redis at ``url``."""
    return settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": url})})


def check_port_free(host: str, port: int, what: str, variable: str) -> None:
    """Fail with one clear line if ``host:port`` is taken (before starting anything on it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise DependencyUnavailable(
                what, f"cannot listen on {host}:{port} ({exc.strerror}); set {variable}"
            ) from exc


#: One worker process per queue, each with one pool process except the live queue's: its
#: followers mostly wait for segments, so two rooms recorded at once are both followed.
WORKER_QUEUES: Final[tuple[str, ...]] = (jobs.DEFAULT_QUEUE, jobs.MEDIA_QUEUE, jobs.LIVE_QUEUE)
WORKER_CONCURRENCY: Final[dict[str, int]] = {jobs.LIVE_QUEUE: 2}


def start_worker(settings: Settings, queue: str) -> subprocess.Popen[bytes]:
    """One Celery worker on ``queue`` (concurrency 1, 2 on the live queue) talking to
    ``settings.redis_url``; the default-queue worker also runs the periodic scheduler."""
    env = dict(os.environ, ROOMCAST_REDIS__URL=settings.redis_url)
    command = [sys.executable, "-m", "celery", "-A", "workers.celery_entry"]
    beat = queue == jobs.DEFAULT_QUEUE
    command += worker_argv(
        settings, concurrency=WORKER_CONCURRENCY.get(queue, 1), queues=(queue,), beat=beat
    )
    death = die_with_parent_killed if queue == jobs.LIVE_QUEUE else die_with_parent
    return subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        # A follower (live queue) runs as long as its room: a warm shutdown would wait for it,
        # so that worker stops cold (SIGQUIT) and dies with us by SIGKILL; a follower's loss is
        # covered (the full render at room end).
        preexec_fn=death,  # noqa: PLW1509 - one prctl call, no locks taken
    )


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def _watch_worker(worker: subprocess.Popen[bytes], server: uvicorn.Server, died: list[int]) -> None:
    """Stop serving if the worker dies: a half-running service should not look healthy."""
    code = worker.wait()
    if not server.should_exit:
        died.append(code)
        server.should_exit = True


def run(settings: Settings, *, echo: Callable[[str], None] = print) -> int:
    """Run everything until a signal; return the exit code. Raises ``DependencyUnavailable``."""
    previous = {sig: signal.signal(sig, _raise_shutdown) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with ExitStack() as stack:
            return _run(settings, stack, echo)
    except Shutdown:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(settings: Settings, stack: ExitStack, echo: Callable[[str], None]) -> int:
    check_port_free(settings.api.host, settings.api.port, "api", "ROOMCAST_API__PORT")
    upgrade(settings.database_url)

    if settings.redis.url:
        ping_redis(settings.redis.url, timeout=2.0)
    else:
        redis = RedisProcess(
            settings.redis.server_binary, settings.redis.port, settings.var_path / "redis"
        )
        redis.start()
        stack.callback(redis.stop, REDIS_STOP_SECONDS)
        settings = with_redis_url(settings, redis.url)

    build_storage(settings).check()

    workers: dict[str, subprocess.Popen[bytes]] = {}
    for queue in WORKER_QUEUES:
        workers[queue] = start_worker(settings, queue)
        stop = signal.SIGQUIT if queue == jobs.LIVE_QUEUE else signal.SIGTERM
        stack.callback(stop_process_group, workers[queue], stop, WORKER_STOP_SECONDS)

    application = create_app(settings)
    # One process serves API + live: the signaling route joins the API's app and port.
    mount_live(application, LiveNode(settings))
    config = uvicorn.Config(
        application,
        host=settings.api.host,
        port=settings.api.port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        ws_per_message_deflate=False,  # as `roomcast live` (roomcast/cli.py): small messages
    )
    server = uvicorn.Server(config)
    died: list[int] = []
    for queue, worker in workers.items():
        threading.Thread(
            target=_watch_worker, args=(worker, server, died), name=f"worker-watch-{queue}",
            daemon=True,
        ).start()  # fmt: skip
    pids = ", ".join(f"{worker.pid} ({queue})" for queue, worker in workers.items())
    echo(
        f"Roomcast is up: API http://{settings.api.host}:{settings.api.port}"
        f" (readiness /readyz, live rooms ws://{settings.api.host}:{settings.api.port}"
        f"/v1/rooms/ID/ws) | redis {settings.redis_url} | worker pids {pids}"
        " | Ctrl-C stops everything"
    )
    server.run()
    if died:
        echo(f"roomcast up: a worker exited with code {died[0]}; stopping")
        return 1
    return 0

"""A worker SIGKILLed in the middle of a clip render and of a webhook delivery (post-production
render: tests/workers/test_postprod_kill.py). Redis hands the unacknowledged message (``acks_late``,
a short visibility timeout here) to the next worker, which finishes the job: the outputs are
the bytes an uninterrupted run makes, there is one row per clip / delivery, and storage holds
nothing the finished job does not own."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from core import clips, jobs
from core.adapters.celery_queue import CeleryJobQueue
from core.adapters.db import migrate
from core.adapters.db.engine import make_engine, make_session_factory
from core.adapters.db.models import Clip, User, WebhookDelivery, WebhookEndpoint
from core.adapters.storage_factory import build_storage
from core.adapters.webhook_outbox import emit
from core.settings import Settings
from core.webhooks import events
from core.webhooks.delivery import resumed_attempt
from core.webhooks.signing import generate_secret
from tests.api.replay_seed import seed_replay
from tests.faults.support import (
    fast_redelivery_env,
    files_under,
    stored_keys,
    wait_until,
    with_redis,
)
from tests.recorder.fake_jobs import RecordingJobQueue
from tests.support.celery_worker import start_worker, stop_worker
from tests.workers.webhook_receiver import independent_verify
from workers.audio.encode import BlockEncoder, EncodeSpec
from workers.context import WorkerContext
from workers.tasks.clips import render_clip

RATE = 48_000
REPLAY_SECONDS = 180.0


@pytest.fixture
def fault_settings(settings: Settings, redis_url: str) -> Settings:
    migrate.upgrade(settings.database_url)
    return with_redis(settings, redis_url)


@pytest.fixture
def context(fault_settings: Settings) -> Iterator[WorkerContext]:
    engine = make_engine(fault_settings)
    yield WorkerContext(
        settings=fault_settings, engine=engine, sessions=make_session_factory(engine),
        storage=build_storage(fault_settings), queue=RecordingJobQueue(), pid=0,
    )  # fmt: skip
    engine.dispose()


def _host(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        host = User(email="host@example.com", display_name="Hana", password_hash="x")
        session.add(host)
        session.commit()
        return host.id


def long_mp3(path: Path, seconds: float = REPLAY_SECONDS) -> bytes:
    """A gliding tone (three minutes: the cut is still running when the worker is killed)."""
    t = np.arange(int(seconds * RATE)) / RATE
    samples = (0.4 * np.sin(2 * np.pi * (220 + t) * t)).astype(np.float32)
    encoder = BlockEncoder(path, EncodeSpec("mp3", sample_rate=44_100, bitrate_kbps=128))
    for block in np.array_split(samples, 200):
        encoder.write(block)
    return encoder.close().read_bytes()


def _pending_clip(sessions: sessionmaker[Session], replay_id: str, user: str) -> str:
    with sessions() as session:
        clip = Clip(replay_id=replay_id, user_id=user, start_seconds=20.0, duration_seconds=60.0)
        session.add(clip)
        session.commit()
        return clip.id


def _clip_rows(sessions: sessionmaker[Session], replay_id: str) -> list[tuple[str, str]]:
    with sessions() as session:
        rows = session.execute(sa.select(Clip.id, Clip.status).where(Clip.replay_id == replay_id))
        return sorted((clip_id, status) for clip_id, status in rows)


def test_worker_killed_mid_clip_render_redelivers_and_stores_identical_bytes(
    fault_settings: Settings, context: WorkerContext, tmp_path: Path
) -> None:
    host = _host(context.sessions)
    seeded = seed_replay(
        fault_settings, context.storage, host, mp3=long_mp3(tmp_path / "r.mp3"),
        duration=REPLAY_SECONDS,
    )  # fmt: skip
    clip_id = _pending_clip(context.sessions, seeded.replay_id, host)
    storage_root = fault_settings.storage_dir
    keys_before, files_before = stored_keys(context.storage), files_under(storage_root)
    scratch = tmp_path / "worker-tmp"  # the worker's TMPDIR: its scratch dir shows the task runs
    scratch.mkdir()
    env = fast_redelivery_env(TMPDIR=str(scratch))
    var = Path(fault_settings.var_dir)

    first = start_worker(fault_settings.redis_url, var, env)
    second = None
    try:
        queue = CeleryJobQueue(fault_settings)
        try:
            queue.enqueue(jobs.CLIP_RENDER, clip_id)
        finally:
            queue.close()
        wait_until(lambda: list(scratch.glob("roomcast-clip-*")), 60, "the clip render to start",
                   step=0.002)  # fmt: skip
        time.sleep(0.05)  # into the cut
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=10)
        assert _clip_rows(context.sessions, seeded.replay_id) == [(clip_id, "pending")], (
            "the render finished before the kill: the test did not interrupt it"
        )
        assert not context.storage.exists(clips.audio_key(clip_id))

        second = start_worker(fault_settings.redis_url, var, env)
        wait_until(
            lambda: _clip_rows(context.sessions, seeded.replay_id)[0][1] != "pending",
            120, "the redelivered clip render",
        )  # fmt: skip
        recovered_in = time.monotonic() - killed_at
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)

    assert _clip_rows(context.sessions, seeded.replay_id) == [(clip_id, "ready")]
    new_keys = stored_keys(context.storage) - keys_before
    assert new_keys == {clips.audio_key(clip_id), clips.waveform_key(clip_id)}
    # No partial files either (the local backend hides ``.partial`` files from ``list``).
    assert files_under(storage_root) - files_before == new_keys
    assert recovered_in < 60

    # The same clip rendered here, uninterrupted: the redelivered run stored exactly these bytes.
    reference = _pending_clip(context.sessions, seeded.replay_id, host)
    assert render_clip(context, reference) is True
    for key_of in (clips.audio_key, clips.waveform_key):
        assert context.storage.get_bytes(key_of(clip_id)) == context.storage.get_bytes(
            key_of(reference)
        )
    print(f"clip render: recovered {recovered_in:.1f} s after the kill")


# -- webhook delivery: the worker dies while the receiver holds the request -------------------


@dataclass
class HangingReceiver:
    """Holds the first request open until ``release`` is set; answers 204 to the rest."""

    secret: str = ""
    port: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    requests: list[tuple[dict[str, str], bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/roomcast"


@contextmanager
def hanging_receiver() -> Iterator[HangingReceiver]:
    receiver = HangingReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {name.lower(): value for name, value in self.headers.items()}
            verified = independent_verify(receiver.secret, headers, body, time.time())
            with receiver.lock:
                receiver.requests.append((headers, body, verified))
                first = len(receiver.requests) == 1
            if first:
                receiver.held.set()
                receiver.release.wait(30)
            try:
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender is gone (killed)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, name="hanging-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


#: Timeout 1 s: the claim's lease (2 × timeout) has run out when the message comes back.
WEBHOOK_ENV = {
    "ROOMCAST_WEBHOOKS__ALLOW_PRIVATE_TARGETS": "127.0.0.1",
    "ROOMCAST_WEBHOOKS__TIMEOUT_SECONDS": "1",
    "ROOMCAST_WEBHOOKS__RETRY_JITTER": "0",
}


def _delivery(sessions: sessionmaker[Session], endpoint_id: str) -> list[WebhookDelivery]:
    with sessions() as session:
        return list(
            session.scalars(
                sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
            )
        )


def test_worker_killed_mid_webhook_post_redelivers_once_with_the_same_id(
    fault_settings: Settings, context: WorkerContext
) -> None:
    owner = _host(context.sessions)
    var = Path(fault_settings.var_dir)
    env = fast_redelivery_env(**WEBHOOK_ENV)
    event = events.clip_ready(
        clip_id="clip-1", replay_id="replay-1", start_seconds=3.0, duration_seconds=30.0,
        audio_url="http://127.0.0.1/a.mp3", page_url="http://127.0.0.1/clips/x",
        at=datetime.now(UTC),
    )  # fmt: skip
    first = start_worker(fault_settings.redis_url, var, env)
    second = None
    queue = CeleryJobQueue(fault_settings)
    try:
        with hanging_receiver() as receiver:
            receiver.secret = generate_secret()
            with context.sessions() as session:
                endpoint = WebhookEndpoint(
                    owner_id=owner, url=receiver.url, secret=receiver.secret, events=["clip.ready"]
                )
                session.add(endpoint)
                session.commit()
                endpoint_id = endpoint.id
            assert len(emit(context.sessions, queue, owner, event)) == 1
            assert receiver.held.wait(60), "the worker never posted"
            os.killpg(first.pid, signal.SIGKILL)  # while the receiver holds the request
            killed_at = time.monotonic()
            first.wait(timeout=10)
            receiver.release.set()
            [claimed] = _delivery(context.sessions, endpoint_id)
            assert (claimed.status, claimed.attempts) == ("pending", 1)

            second = start_worker(fault_settings.redis_url, var, env)
            wait_until(
                lambda: _delivery(context.sessions, endpoint_id)[0].status != "pending",
                60, "the redelivered webhook attempt",
            )  # fmt: skip
            recovered_in = time.monotonic() - killed_at
            time.sleep(1.5)  # a duplicate send would arrive within this
            requests = list(receiver.requests)
    finally:
        queue.close()
        stop_worker(first)
        if second is not None:
            stop_worker(second)

    [delivery] = _delivery(context.sessions, endpoint_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 2, 204)
    # Sent twice (the receiver cannot know the first answer was lost): same webhook-id and body,
    # so a receiver deduplicating by webhook-id acts once; both signatures verify.
    assert len(requests) == 2
    assert {headers["webhook-id"] for headers, _, _ in requests} == {event.id}
    assert {body for _, body, _ in requests} == {events.encode_body(event.payload())}
    assert all(verified for _, _, verified in requests)
    print(f"webhook: delivered {recovered_in:.1f} s after the kill")


@pytest.mark.parametrize(
    ("status", "made", "attempt", "lease_in", "redelivered", "runs_as"),
    [
        ("pending", 1, 1, -1.0, True, 2),  # claimed by a dead worker, lease over: next attempt
        ("pending", 1, 1, +5.0, True, 1),  # lease running: someone may still be sending
        ("pending", 1, 1, -1.0, False, 1),  # a duplicate, not a redelivery: never promoted
        ("delivered", 1, 1, -1.0, True, 1),  # done: gate drops it
        ("pending", 0, 1, None, True, 1),  # never claimed: runs as itself
    ],
)
def test_resumed_attempt_promotes_only_a_lost_claim(
    status: str, made: int, attempt: int, lease_in: float | None, redelivered: bool, runs_as: int
) -> None:
    now = 1_000.0
    lease = None if lease_in is None else now + lease_in
    assert resumed_attempt(status, made, attempt, lease, now, redelivered=redelivered) == runs_as

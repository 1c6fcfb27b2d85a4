"""The follower's lock and heartbeat in Redis: ``roomcast:follow:<recording_id>``.

One follower per recording holds the key (``SET NX`` with a TTL, a random token as value) and
refreshes it every ``ttl / 3`` from a background thread while it works. The end-of-room render
(``roomcast.postprod.render``) defers while the key exists, so the live render can publish
first; a follower that dies simply stops refreshing, the key expires, and the full render runs.
Refresh and release check the token (a Lua script: compare-and-act in one step), so a follower
that lost its key to expiry never deletes a successor's.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Final, Self

import redis

from core.errors import DependencyUnavailable

#: Seconds a heartbeat lives without a refresh: how long a killed follower delays the full
#: render, at most.
HEARTBEAT_TTL_SECONDS: Final = 15.0

_REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then " \
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # fmt: skip
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then " \
    "return redis.call('del', KEYS[1]) else return 0 end"  # fmt: skip


def follow_key(recording_id: str) -> str:
    """The Redis key of a recording's follower."""
    return f"roomcast:follow:{recording_id}"


def redis_client(url: str) -> Any:
    """A client with short timeouts: a heartbeat must not hang a worker."""
    return redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


def follower_alive(client: Any, recording_id: str) -> bool:
    """Whether a follower holds ``recording_id``; raises ``DependencyUnavailable``."""
    try:
        return bool(client.exists(follow_key(recording_id)))
    except redis.RedisError as exc:
        raise DependencyUnavailable("redis", f"cannot read the follower heartbeat: {exc}") from exc


class Heartbeat:
    """The lock of one follower (see module doc). ``with`` it after :meth:`acquire`."""

    def __init__(self, client: Any, recording_id: str,
                 ttl_seconds: float = HEARTBEAT_TTL_SECONDS) -> None:  # fmt: skip
        self.key = follow_key(recording_id)
        self._client = client
        self._ttl_ms = int(ttl_seconds * 1000)
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False  #: the key expired or was taken while we held it

    def acquire(self) -> bool:
        """Take the key if nobody holds it; start refreshing it."""
        try:
            taken = bool(self._client.set(self.key, self._token, nx=True, px=self._ttl_ms))
        except redis.RedisError as exc:
            raise DependencyUnavailable("redis", f"cannot take {self.key}: {exc}") from exc
        if taken:
            self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.key}",
                                            daemon=True)  # fmt: skip
            self._thread.start()
        return taken

    def _beat(self) -> None:
        while not self._stop.wait(self._ttl_ms / 3000.0):
            try:
                if not self._client.eval(_REFRESH, 1, self.key, self._token, self._ttl_ms):
                    self.lost = True
                    return
            except redis.RedisError:
                continue  # the next beat tries again; the TTL covers two misses

    def release(self) -> None:
        """Stop refreshing and delete the key if it is still ours (best effort)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        try:
            self._client.eval(_RELEASE, 1, self.key, self._token)
        except redis.RedisError:
            pass  # it expires on its own

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

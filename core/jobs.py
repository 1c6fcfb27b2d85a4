"""Job names, queues and time limits: the pure contract between senders and the worker.

Senders (the API, the recorder) enqueue tasks *by name* through the ``JobQueue`` port, so they
never import ``workers``. The worker registers its tasks under the same names. Both sides take
queue names and time limits from here, which is why this module is pure and tiny.

Time limits matter twice: Celery kills a task past its hard limit, and Redis re-delivers an
unacknowledged message once the broker's *visibility timeout* passes. With ``acks_late`` a
message is acknowledged only after its task finishes, so the visibility timeout must be longer
than the longest task may run, or a healthy long mix would be delivered a second time while it
is still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

#: Short housekeeping tasks (ping, webhooks, feeds).
DEFAULT_QUEUE: Final = "default"
#: Long media work (align, mix, loudness, encode) so it never delays short tasks.
MEDIA_QUEUE: Final = "media"
#: Followers of live rooms (one long task per recording, mostly waiting for segments), so they
#: never hold the media queue's slots while a room is live.
LIVE_QUEUE: Final = "live"
QUEUES: Final[tuple[str, ...]] = (DEFAULT_QUEUE, MEDIA_QUEUE, LIVE_QUEUE)

QueueName = Literal["default", "media", "live"]

#: The readiness probe's task: proves broker → worker → result backend end to end.
PING: Final = "roomcast.ping"
#: What the ping task returns.
PONG: Final = "pong"

#: Post-production of one recording (argument: the recording id), on the media queue. The
#: recorder enqueues it when a recording stops or the room ends, once the manifest is stored.
POSTPROD_RENDER: Final = "roomcast.postprod.render"

#: Follow one recording while its room is live (argument: the recording id), on the live queue:
#: render its segments as they land so the replay is ready seconds after the room ends
#: (workers/tasks/follow.py). The live node enqueues it when a recording starts. Acknowledged
#: early (no redelivery): a follower that dies loses nothing, the end-of-room render runs.
POSTPROD_FOLLOW: Final = "roomcast.postprod.follow"

#: One webhook delivery attempt (arguments: the delivery id, the 1-based attempt number), on the
#: default queue. ``core.adapters.webhook_outbox`` enqueues attempt 1; the task schedules the rest.
WEBHOOK_DELIVER: Final = "roomcast.webhooks.deliver"
#: Re-send webhook deliveries that were stored but never enqueued, or whose attempt was lost
#: (no arguments); run every SWEEP_INTERVAL_SECONDS by the beat embedded in one worker
#: (``roomcast worker --beat``; ``roomcast up`` runs it in its default-queue worker).
WEBHOOK_SWEEP: Final = "roomcast.webhooks.sweep"
SWEEP_INTERVAL_SECONDS: Final = 120.0
#: Cut one clip from its replay's MP3 (argument: the clip id), on the default queue: at most a
#: minute of audio, so it must not wait behind hours of mixing on the media queue.
CLIP_RENDER: Final = "roomcast.clips.render"


@dataclass(frozen=True)
class TimeLimits:
    """Soft and hard limits of one class of task, in seconds."""

    soft_seconds: int
    """The task gets ``SoftTimeLimitExceeded`` and may clean up."""
    hard_seconds: int
    """The worker kills the task's process."""

    def __post_init__(self) -> None:
        if not 0 < self.soft_seconds < self.hard_seconds:
            raise ValueError(
                f"time limits need 0 < soft < hard, got soft={self.soft_seconds}"
                f" hard={self.hard_seconds}"
            )


#: Limits applied to every task unless the task sets its own.
DEFAULT_LIMITS: Final = TimeLimits(soft_seconds=300, hard_seconds=360)
#: Limits for media tasks: a multi-hour room must mix and encode well inside this.
MEDIA_LIMITS: Final = TimeLimits(soft_seconds=3 * 3600, hard_seconds=3 * 3600 + 300)
#: Limits for a follower: as long as a room may stay live. Followers are acknowledged early,
#: so these do not enter the broker's visibility timeout.
FOLLOW_LIMITS: Final = TimeLimits(soft_seconds=12 * 3600, hard_seconds=12 * 3600 + 300)

#: Extra margin between the longest hard limit and Redis re-delivering the message.
VISIBILITY_MARGIN_SECONDS: Final = 1800


def visibility_timeout(*limits: TimeLimits, margin_seconds: int = VISIBILITY_MARGIN_SECONDS) -> int:
    """The broker visibility timeout: longer than any task's hard limit, plus a margin.

    >>> visibility_timeout(TimeLimits(10, 20), TimeLimits(100, 200), margin_seconds=5)
    205
    """
    if not limits:
        raise ValueError("visibility_timeout needs at least one TimeLimits")
    if margin_seconds <= 0:
        raise ValueError("margin_seconds must be positive")
    return max(limit.hard_seconds for limit in limits) + margin_seconds


def check_queue(queue: str) -> QueueName:
    """Return ``queue`` if it is one of ours; a typo must fail at the sender, not vanish."""
    if queue == DEFAULT_QUEUE:
        return DEFAULT_QUEUE
    if queue == MEDIA_QUEUE:
        return MEDIA_QUEUE
    if queue == LIVE_QUEUE:
        return LIVE_QUEUE
    raise ValueError(f"unknown queue {queue!r}; expected one of {', '.join(QUEUES)}")

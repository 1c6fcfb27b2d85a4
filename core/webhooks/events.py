"""The events Roomcast sends to webhooks, their payloads and their deterministic ids.

Pure. Each builder returns a :class:`WebhookEvent` whose body follows the Standard Webhooks
payload layout::

    {"type": "clip.ready", "timestamp": "2030-01-01T18:00:00Z", "data": {...}}

An event's id (the ``webhook-id`` header, ``msg_`` + 32 base32 characters) is derived from its
type and the thing it is about, so recording the same occurrence twice (a task retried, a worker
restarted) yields the same id and, through the ``(endpoint_id, event_id)`` unique key, the same
delivery row: receivers get it once. An occurrence that may genuinely happen again (an episode
unpublished and published anew) passes an ``occurrence`` discriminator to get a new id.

The body is encoded canonically (:func:`encode_body`: sorted keys, no spaces) so every retry of a
delivery signs and sends exactly the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

from core.errors import InvalidInput

EventType = Literal[
    "room.started",
    "room.ended",
    "recording.ready",
    "replay.ready",
    "episode.published",
    "clip.ready",
]
#: Every event type, in the order the docs list them.
EVENT_TYPES: Final[tuple[EventType, ...]] = get_args(EventType)
#: ``webhook-id`` prefix, as in the Standard Webhooks examples.
ID_PREFIX: Final = "msg_"


@dataclass(frozen=True)
class WebhookEvent:
    """One occurrence to tell subscribers about."""

    type: EventType
    id: str
    """Deterministic message id (``msg_...``), the same across retries and re-recordings."""
    timestamp: datetime
    """When it happened (aware, UTC)."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """JSON-serializable details; ids and URLs, never secrets."""

    def payload(self) -> dict[str, Any]:
        """The JSON document sent as the request body."""
        return {"type": self.type, "timestamp": iso(self.timestamp), "data": dict(self.data)}


def check_event_type(value: str) -> EventType:
    """``value`` as an :data:`EventType`, or ``InvalidInput`` ``unknown_webhook_event``."""
    if value in EVENT_TYPES:
        return value
    raise InvalidInput(
        f"unknown webhook event {value!r}; expected one of {', '.join(EVENT_TYPES)}",
        code="unknown_webhook_event",
    )


def check_event_types(values: Iterable[str]) -> tuple[EventType, ...]:
    """Subscribed event types, deduplicated in :data:`EVENT_TYPES` order; at least one."""
    chosen = {check_event_type(value) for value in values}
    if not chosen:
        raise InvalidInput(
            "subscribe to at least one event: " + ", ".join(EVENT_TYPES),
            code="unknown_webhook_event",
        )
    return tuple(event for event in EVENT_TYPES if event in chosen)


def event_id(event_type: EventType, subject_id: str, occurrence: str = "") -> str:
    """The message id of ``event_type`` about ``subject_id`` (see the module doc)."""
    if not subject_id:
        raise InvalidInput("a webhook event needs the id of what it is about")
    material = f"{event_type}\n{subject_id}\n{occurrence}".encode()
    digest = hashlib.sha256(material).digest()[:20]
    return ID_PREFIX + base64.b32encode(digest).decode("ascii").lower()


def iso(moment: datetime) -> str:
    """``moment`` in UTC as ISO 8601 with a ``Z`` (naive times are taken as UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.isoformat().replace("+00:00", "Z")


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes of ``payload`` (sorted keys, compact, UTF-8)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def subscribed(events: Iterable[str], event_type: EventType) -> bool:
    """Whether an endpoint subscribed to ``events`` wants ``event_type``."""
    return event_type in set(events)


def _event(
    event_type: EventType,
    subject_id: str,
    at: datetime,
    data: Mapping[str, Any],
    occurrence: str = "",
) -> WebhookEvent:
    return WebhookEvent(event_type, event_id(event_type, subject_id, occurrence), at, data)


def room_started(*, room_id: str, title: str, host_id: str, at: datetime) -> WebhookEvent:
    """A room went live."""
    return _event(
        "room.started", room_id, at, {"room_id": room_id, "title": title, "host_id": host_id}
    )


def room_ended(*, room_id: str, title: str, host_id: str, at: datetime) -> WebhookEvent:
    """A room ended (its recording, if any, is now being processed)."""
    return _event(
        "room.ended", room_id, at, {"room_id": room_id, "title": title, "host_id": host_id}
    )


def recording_ready(
    *, recording_id: str, room_id: str, manifest_key: str | None, at: datetime
) -> WebhookEvent:
    """A room's recording is complete in storage and queued for post-production."""
    data = {"recording_id": recording_id, "room_id": room_id, "manifest_key": manifest_key}
    return _event("recording.ready", recording_id, at, data)


def replay_ready(
    *,
    replay_id: str,
    room_id: str,
    duration_seconds: float | None,
    audio_url: str,
    page_url: str,
    at: datetime,
) -> WebhookEvent:
    """Post-production finished: the replay streams at ``audio_url``."""
    data = {
        "replay_id": replay_id,
        "room_id": room_id,
        "duration_seconds": duration_seconds,
        "audio_url": audio_url,
        "page_url": page_url,
    }
    return _event("replay.ready", replay_id, at, data)


def episode_published(
    *,
    episode_id: str,
    show_id: str,
    replay_id: str,
    title: str,
    guid: str,
    feed_url: str,
    at: datetime,
    occurrence: str = "",
) -> WebhookEvent:
    """An episode appeared in its show's feed; ``occurrence`` tells re-publications apart."""
    data = {
        "episode_id": episode_id,
        "show_id": show_id,
        "replay_id": replay_id,
        "title": title,
        "guid": guid,
        "feed_url": feed_url,
    }
    return _event("episode.published", episode_id, at, data, occurrence)


def clip_ready(
    *,
    clip_id: str,
    replay_id: str,
    start_seconds: float,
    duration_seconds: float,
    audio_url: str,
    page_url: str,
    at: datetime,
) -> WebhookEvent:
    """A clip finished rendering and can be shared at ``page_url``."""
    data = {
        "clip_id": clip_id,
        "replay_id": replay_id,
        "start_seconds": start_seconds,
        "duration_seconds": duration_seconds,
        "audio_url": audio_url,
        "page_url": page_url,
    }
    return _event("clip.ready", clip_id, at, data)

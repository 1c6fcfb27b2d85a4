"""Webhook events: deterministic ids, the Standard Webhooks payload, canonical bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput
from core.webhooks import events

AT = datetime(2030, 1, 1, 18, 0, 0, tzinfo=UTC)


def test_event_types_are_the_six_of_the_issue() -> None:
    assert events.EVENT_TYPES == (
        "room.started",
        "room.ended",
        "recording.ready",
        "replay.ready",
        "episode.published",
        "clip.ready",
    )


def test_ids_are_deterministic_per_type_and_subject() -> None:
    first = events.room_started(room_id="r1", title="T", host_id="h", at=AT)
    again = events.room_started(room_id="r1", title="Renamed", host_id="h", at=AT + timedelta(1))
    ended = events.room_ended(room_id="r1", title="T", host_id="h", at=AT)
    other = events.room_started(room_id="r2", title="T", host_id="h", at=AT)
    assert first.id == again.id
    assert len({first.id, ended.id, other.id}) == 3
    assert first.id.startswith("msg_") and len(first.id) == 36 and first.id.isascii()


def test_occurrence_distinguishes_republications() -> None:
    def publish(occurrence: str) -> str:
        return events.episode_published(
            episode_id="e",
            show_id="s",
            replay_id="r",
            title="t",
            guid="g",
            feed_url="u",
            at=AT,
            occurrence=occurrence,
        ).id

    assert publish("") != publish("2")


def test_payload_follows_the_standard_webhooks_layout() -> None:
    event = events.clip_ready(
        clip_id="c1",
        replay_id="rp",
        start_seconds=12.5,
        duration_seconds=30.0,
        audio_url="https://x/a.mp3",
        page_url="https://x/clips/c1",
        at=datetime(2030, 1, 1, 19, 0, tzinfo=timezone(timedelta(hours=1))),
    )
    assert event.payload() == {
        "type": "clip.ready",
        "timestamp": "2030-01-01T18:00:00Z",
        "data": {
            "clip_id": "c1",
            "replay_id": "rp",
            "start_seconds": 12.5,
            "duration_seconds": 30.0,
            "audio_url": "https://x/a.mp3",
            "page_url": "https://x/clips/c1",
        },
    }


def test_body_is_canonical_json() -> None:
    body = events.encode_body({"b": 1, "a": {"d": "é", "c": [1, 2]}})
    assert body == '{"a":{"c":[1,2],"d":"é"},"b":1}'.encode()
    assert json.loads(body) == {"a": {"c": [1, 2], "d": "é"}, "b": 1}


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=6))
def test_body_does_not_depend_on_key_order(payload: dict[str, object]) -> None:
    reordered = dict(reversed(list(payload.items())))
    assert events.encode_body(payload) == events.encode_body(reordered)


def test_event_type_checks_have_a_stable_code() -> None:
    assert events.check_event_types(["clip.ready", "room.started", "clip.ready"]) == (
        "room.started",
        "clip.ready",
    )
    with pytest.raises(InvalidInput) as info:
        events.check_event_types(["room.exploded"])
    assert info.value.code == "unknown_webhook_event"
    with pytest.raises(InvalidInput) as info:
        events.check_event_types([])
    assert info.value.code == "unknown_webhook_event"


def test_every_builder_makes_its_type() -> None:
    built = [
        events.room_started(room_id="r", title="t", host_id="h", at=AT),
        events.room_ended(room_id="r", title="t", host_id="h", at=AT),
        events.recording_ready(recording_id="rec", room_id="r", manifest_key="k", at=AT),
        events.replay_ready(
            replay_id="rp", room_id="r", duration_seconds=1.0, audio_url="a", page_url="p", at=AT
        ),
        events.episode_published(
            episode_id="e", show_id="s", replay_id="rp", title="t", guid="g", feed_url="f", at=AT
        ),
        events.clip_ready(
            clip_id="c",
            replay_id="rp",
            start_seconds=0,
            duration_seconds=1,
            audio_url="a",
            page_url="p",
            at=AT,
        ),
    ]
    assert tuple(event.type for event in built) == events.EVENT_TYPES
    with pytest.raises(InvalidInput):
        events.room_started(room_id="", title="t", host_id="h", at=AT)

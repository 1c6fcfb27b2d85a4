"""progress.json: the watermark rule, the document's round trip and validation, the
provisional manifest built from stored sidecars."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import InvalidInput, InvalidProgress, InvalidSidecar
from core.recording.manifest import build_manifest
from core.recording.progress import (
    DEFAULT_MARGIN_SAMPLES,
    RecordingProgress,
    compute_watermark,
    progress_key,
    provisional_manifest,
    segments_before,
)
from core.recording.sidecar import SegmentSidecar

WHEN = datetime(2026, 11, 24, 10, 30, 5, 250_000, tzinfo=UTC)


def test_key_and_margin() -> None:
    assert progress_key("rec-7") == "recordings/rec-7/progress.json"
    assert DEFAULT_MARGIN_SAMPLES == 48_000


@pytest.mark.parametrize(
    ("now", "starts", "margin", "expected"),
    [
        (480_000, [], 48_000, 432_000),  # nothing open: now minus the margin
        (480_000, [240_000, 300_000], 48_000, 192_000),  # the oldest open segment bounds it
        (480_000, [600_000], 48_000, 432_000),  # an open start after now cannot raise it
        (30_000, [], 48_000, 0),  # never negative
        (100, [50], 0, 50),
    ],
)
def test_watermark_examples(now: int, starts: list[int], margin: int, expected: int) -> None:
    assert compute_watermark(now, starts, margin) == expected


@given(
    now=st.integers(min_value=0, max_value=10**9),
    starts=st.lists(st.integers(min_value=0, max_value=10**9), max_size=8),
    margin=st.integers(min_value=0, max_value=10**6),
)
def test_watermark_is_below_now_and_every_open_start(
    now: int, starts: list[int], margin: int
) -> None:
    w = compute_watermark(now, starts, margin)
    assert w >= 0
    for bound in [now, *starts]:
        assert w <= max(0, bound - margin)
    # ... and as high as that allows: the tightest bound is met exactly.
    assert w == max(0, min([now, *starts]) - margin)


def test_negative_margin_is_refused() -> None:
    with pytest.raises(InvalidProgress, match="margin"):
        compute_watermark(10, [], -1)


def test_document_golden_and_round_trip() -> None:
    doc = RecordingProgress("rec1", 1_440_000, WHEN)
    assert json.loads(doc.to_json()) == {
        "version": 1,
        "recording_id": "rec1",
        "sample_rate": 48000,
        "watermark": 1_440_000,
        "updated_at": "2026-11-24T10:30:05.250000Z",
    }
    assert RecordingProgress.from_json(doc.to_json()) == doc
    assert doc.seconds == 30.0
    # Another offset is normalised to UTC on the way out and in.
    paris = WHEN.astimezone(timezone(timedelta(hours=1)))
    assert (
        RecordingProgress("rec1", 5, paris).to_json()
        == RecordingProgress("rec1", 5, WHEN).to_json()
    )
    back = RecordingProgress.from_json(
        json.dumps({**json.loads(doc.to_json()), "updated_at": "2026-11-24T11:30:05.25+01:00"})
    )
    assert back.updated_at == WHEN and back.updated_at.tzinfo == UTC


GOOD = json.loads(RecordingProgress("rec1", 96_000, WHEN).to_json())


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "watermark"}), "watermark"),
        (json.dumps({**GOOD, "version": 2}), "version"),
        (json.dumps({**GOOD, "version": True}), "version"),
        (json.dumps({**GOOD, "recording_id": ""}), "recording_id"),
        (json.dumps({**GOOD, "recording_id": 7}), "recording_id"),
        (json.dumps({**GOOD, "sample_rate": 44_100}), "sample_rate"),
        (json.dumps({**GOOD, "watermark": -1}), "watermark"),
        (json.dumps({**GOOD, "watermark": 1.5}), "watermark"),
        (json.dumps({**GOOD, "watermark": True}), "watermark"),
        (json.dumps({**GOOD, "updated_at": "yesterday"}), "updated_at"),
        (json.dumps({**GOOD, "updated_at": "2026-11-24T10:30:05"}), "updated_at"),
        (json.dumps({**GOOD, "updated_at": 1_700_000_000}), "updated_at"),
    ],
)
def test_bad_documents_are_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidProgress, match=field) as caught:
        RecordingProgress.from_json(text)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.code == "invalid_progress"


def _car(
    pid: str, index: int, stream: int, stream_start: int, anchor: int, **kw: object
) -> SegmentSidecar:
    base: dict[str, object] = {
        "recording_id": "rec1",
        "participant_id": pid,
        "display_name": pid.title(),
        "index": index,
        "key": f"recordings/rec1/tracks/{pid}/{index:05d}.opus",
        "stream": stream,
        "ssrc": 1,
        "state": "closed",
        "stream_start": stream_start,
        "anchor": anchor,
        "rtp_first_timestamp": stream_start,
        "rtp_last_timestamp": stream_start + 47_040,
        "duration": 48_000,
        "packets": 50,
        "lost_packets": 0,
        "size": 1000,
        "sha256": "ab" * 32,
    }
    base.update(kw)
    return SegmentSidecar(**base)  # type: ignore[arg-type]


def test_provisional_manifest_from_stored_sidecar_json() -> None:
    cars = [
        _car("alice", 0, 0, 0, 24_000),
        _car("alice", 1, 0, 48_000, 23_990),  # a later, less-delayed packet lowers the anchor
        _car("bob", 0, 0, 0, 96_000),
        _car("bob", 1, 0, 48_000, 96_000, state="open"),  # not confirmed: left out
        _car("carol", 0, 0, 0, 10, recording_id="other"),  # another recording: left out
    ]
    manifest = provisional_manifest(
        recording_id="rec1",
        room_id="room1",
        epoch=1_700_000_000.0,
        sidecars=[c.to_json().encode() for c in cars[:3]] + [cars[3].to_json(), cars[4]],
    )
    expected = build_manifest(
        recording_id="rec1",
        room_id="room1",
        epoch=1_700_000_000.0,
        sidecars=cars[:3],
        status="interrupted",
    )
    assert manifest == expected
    starts = {
        (t.participant_id, s.index): s.start_offset for t in manifest.tracks for s in t.segments
    }
    assert starts == {("alice", 0): 23_990, ("alice", 1): 71_990, ("bob", 0): 96_000}
    assert segments_before(manifest, 96_000) == [("alice", 0), ("alice", 1)]
    assert segments_before(manifest, 96_001) == [("alice", 0), ("alice", 1), ("bob", 0)]
    assert segments_before(manifest, 0) == []


def test_provisional_manifest_refuses_an_unreadable_sidecar() -> None:
    with pytest.raises(InvalidSidecar):
        provisional_manifest(recording_id="rec1", room_id="r", epoch=0.0, sidecars=[b"{}"])

"""Manifest: JSON round-trip, schema rejection naming the field, placement from sidecars."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidManifest, InvalidOpusPacket, InvalidSidecar
from core.recording.manifest import (
    GapEntry,
    Interval,
    Manifest,
    Marker,
    Segment,
    StageInterval,
    Track,
    build_manifest,
)
from core.recording.opus import packet_samples, silence_packets
from core.recording.sidecar import GapRecord, SegmentSidecar


def sample_manifest() -> Manifest:
    segment = Segment(
        "recordings/r1/tracks/alice/00000.opus",
        0,
        0,
        4000,
        4000 + 47 * 960,
        48_000,
        48 * 960,
        47,
        1,
        1234,
        "a" * 64,
    )
    return Manifest(
        recording_id="r1",
        room_id="room-9",
        epoch=1_700_000_000.25,
        status="complete",
        tracks=(Track("alice", "Alice", (segment,)),),
        gaps=(GapEntry("alice", "loss", 48_000 + 960, 960, 1),),
        recording_intervals=(Interval(0, 96_000), Interval(144_000, None)),
        markers=(Marker(50_000, "Intro"),),
        stage_intervals=(StageInterval("alice", 0, None),),
    )


def test_round_trip() -> None:
    manifest = sample_manifest()
    assert Manifest.from_json(manifest.to_json()) == manifest


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["tracks"][0]["segments"][0].__setitem__("duration", -5),
            "tracks[0].segments[0].duration",
        ),
        (lambda d: d["tracks"][0]["segments"][0].pop("key"), "'key' is a required property"),
        (lambda d: d.__setitem__("status", "done"), "status"),
        (lambda d: d.__setitem__("version", 2), "version"),
        (lambda d: d["markers"][0].__setitem__("title", ""), "markers[0].title"),
    ],
)
def test_schema_rejects_a_bad_manifest_naming_the_field(mutate: object, field: str) -> None:
    data = json.loads(sample_manifest().to_json())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(InvalidManifest) as caught:
        Manifest.from_json(json.dumps(data))
    assert field in caught.value.message
    assert caught.value.code == "invalid_manifest"


def test_not_json_is_rejected_clearly() -> None:
    with pytest.raises(InvalidManifest, match="not JSON"):
        Manifest.from_json("{")


def sidecar(
    index: int,
    stream: int,
    stream_start: int,
    anchor: int,
    duration: int,
    gaps: tuple[GapRecord, ...] = (),
) -> SegmentSidecar:
    return SegmentSidecar(
        recording_id="r1",
        participant_id="bob",
        display_name="Bob",
        index=index,
        key=f"k{index}",
        stream=stream,
        ssrc=5,
        state="closed",
        stream_start=stream_start,
        anchor=anchor,
        rtp_first_timestamp=1,
        rtp_last_timestamp=2,
        duration=duration,
        packets=10,
        lost_packets=0,
        gaps=gaps,
        arrivals=((0, anchor),),
    )


def test_build_places_every_segment_of_a_stream_with_the_stream_minimum_anchor() -> None:
    cars = [
        sidecar(1, 0, 1_440_000, 96_100, 1_440_000, (GapRecord("dtx", 1_500_000, 9600, 0),)),
        sidecar(0, 0, 0, 96_050, 1_440_000),
        sidecar(2, 1, 0, 5_000_000, 48_000),
    ]
    manifest = build_manifest(
        recording_id="r1", room_id="room", epoch=1.0, sidecars=cars, status="interrupted"
    )
    (track,) = manifest.tracks
    assert [(s.index, s.start_offset) for s in track.segments] == [
        (0, 96_050),
        (1, 96_050 + 1_440_000),
        (2, 5_000_000),
    ]
    assert manifest.gaps == (GapEntry("bob", "dtx", 96_050 + 1_500_000, 9600, 0),)
    assert Manifest.from_json(manifest.to_json()) == manifest


def test_sidecar_round_trip_and_rejection() -> None:
    car = sidecar(0, 0, 0, 10, 960, (GapRecord("loss", 0, 960, 1),))
    assert SegmentSidecar.from_json(car.to_json()) == car
    with pytest.raises(InvalidSidecar, match="version"):
        SegmentSidecar.from_json('{"version": 9}')


def test_opus_packet_samples_from_toc() -> None:
    assert packet_samples(bytes([31 << 3])) == 960  # CELT FB 20 ms
    assert packet_samples(bytes([(15 << 3) | 1, 0])) == 1920  # hybrid FB 20 ms, two frames
    assert packet_samples(bytes([(3 << 3) | 3, 2])) == 5760  # SILK NB 60 ms x 2
    assert packet_samples(bytes([(28 << 3)])) == 120
    with pytest.raises(InvalidOpusPacket):
        packet_samples(b"")
    with pytest.raises(InvalidOpusPacket):
        packet_samples(bytes([(3 << 3) | 3, 3]))  # 180 ms: too long


def test_silence_covers_gaps_to_within_half_a_small_frame() -> None:
    for gap in (0, 120, 960, 1000, 19_200, 48_059, 48_061):
        written = sum(size for _, size in silence_packets(gap))
        assert abs(written - gap) <= 60

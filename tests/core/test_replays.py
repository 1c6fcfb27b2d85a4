"""core.replays: output keys, the render version, trims and status changes (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.replay_media import FILE_KINDS, hls_key, parse_timeline
from core import replays
from core.errors import InvalidInput

OPTIONS = {"target_lufs": -16.0, "formats": ["mp3", "m4a", "hls"]}


def test_output_keys_are_versioned_and_named_as_the_api_serves_them() -> None:
    assert replays.output_key("r1", "abc123", "mp3") == "replays/r1/vabc123/audio.mp3"
    assert replays.output_key("r1", "abc123", "hls") == "replays/r1/vabc123/hls/playlist.m3u8"
    # Every public file name of the API maps to our file of that kind.
    for name, kind in FILE_KINDS.items():
        assert replays.OUTPUT_FILES[kind].path == name  # type: ignore[index]
    playlist = replays.output_key("r1", "abc", "hls")
    assert hls_key(playlist, "segment_00001.m4s") == "replays/r1/vabc/hls/segment_00001.m4s"
    assert replays.version_of(playlist) == "abc"
    assert replays.version_of("replays/r1/audio.mp3") is None


def test_the_render_version_changes_with_every_input_and_only_with_them() -> None:
    base = replays.render_version(b'{"a": 1}', (None, None), OPTIONS)
    assert base == replays.render_version(b'{"a": 1}', (None, None), dict(OPTIONS))
    assert len(base) == replays.VERSION_LENGTH
    others = {
        replays.render_version(b'{"a": 2}', (None, None), OPTIONS),
        replays.render_version(b'{"a": 1}', (1.0, None), OPTIONS),
        replays.render_version(b'{"a": 1}', (None, 9.0), OPTIONS),
        replays.render_version(b'{"a": 1}', (None, None), {**OPTIONS, "target_lufs": -14.0}),
    }
    assert base not in others and len(others) == 4


@given(
    start=st.one_of(st.none(), st.floats(0, 50)),
    end=st.one_of(st.none(), st.floats(0, 100)),
    length=st.floats(1, 100),
)
def test_trim_cuts_keep_the_span_between_the_trim_positions(
    start: float | None, end: float | None, length: float
) -> None:
    low, high = start or 0.0, length if end is None else min(end, length)
    try:
        cut_start, cut_end = replays.trim_cuts(start, end, length)
    except InvalidInput as exc:
        assert exc.code == "invalid_trim"
        assert high - low <= 1e-9
        return
    assert cut_start >= 0 and cut_end >= 0
    assert length - cut_start - cut_end == pytest.approx(high - low)


def test_recorded_span_is_first_sound_to_last_sound() -> None:
    assert (
        replays.recorded_span_seconds([(48_000, 96_000), (0, 0), (96_000, 144_000)], 48_000) == 4.0
    )
    assert replays.recorded_span_seconds([], 48_000) == 0.0


def test_status_transitions_and_the_redelivery_rule() -> None:
    assert replays.check_transition(None, "processing") == "processing"
    assert replays.check_transition("processing", "ready") == "ready"
    assert replays.check_transition("ready", "processing") == "processing"
    assert replays.check_transition("failed", "processing") == "processing"
    with pytest.raises(ValueError):
        replays.check_transition("failed", "ready")  # only through a render
    with pytest.raises(ValueError):
        replays.check_transition("archived", "ready")
    assert not replays.should_render("ready", "v1", "v1")  # a redelivered message
    assert replays.should_render("ready", "v1", "v2")  # a new trim
    assert replays.should_render("processing", None, "v1")  # a killed run
    assert replays.should_render("failed", "v1", "v1")


def test_failure_reasons_read_as_sentences_with_the_code() -> None:
    reason = replays.failure_reason("segment_missing", "segment recordings/x/1.opus is missing")
    assert reason.startswith("A recorded segment is missing (segment_missing): ")
    assert reason.endswith("recordings/x/1.opus is missing")


def test_the_pipeline_timeline_is_published_in_the_shape_the_api_reads() -> None:
    pipeline = {
        "version": 1,
        "duration": 9.0,
        "speakers": [{"participant_id": "p1", "display_name": "Hana"}],
        "turns": [{"participant_id": "p1", "start": 0.5, "end": 3.0}],
    }
    published = replays.publishable_timeline(pipeline)
    assert published["speakers"][0]["participant_id"] == "p1"  # old names kept
    timeline = parse_timeline(__import__("json").dumps(published).encode())
    assert [(s.id, s.name, s.speaking_seconds) for s in timeline.speakers] == [("p1", "Hana", 2.5)]


def test_loose_room_id_and_loudness_summary() -> None:
    assert replays.loose_room_id(b'{"room_id": "room-1", "tracks": 5}') == "room-1"
    assert replays.loose_room_id(b"not json") is None
    assert replays.loose_room_id(b"[1]") is None
    summary = replays.replay_loudness(
        -16.0, -1.0, {"mp3": {"integrated_lufs": -16.1, "true_peak_dbtp": -1.4,
                              "loudness_range_lu": 3.0}, "stems": None},
    )  # fmt: skip
    assert summary["integrated_lufs"] == -16.1 and summary["lra"] == 3.0
    assert set(summary["outputs"]) == {"mp3"}

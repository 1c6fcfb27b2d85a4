"""Pass 1 decodes a block's tracks on a thread pool with the same result as one thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.audio.timeline_plan import output_span
from tests.workers.audio.rooms import Speaker, speech_like, write_room
from workers.audio.render import decode_pass, plan_tracks
from workers.audio.sources import DirectorySource

RATE = 48_000


def test_threads_change_neither_the_spills_nor_the_warnings(tmp_path: Path) -> None:
    room = tmp_path / "room"
    manifest = write_room(
        room,
        [
            Speaker("ann", speech_like(5.0, seed=1)),
            Speaker("ben", speech_like(4.0, seed=2), start=RATE // 2),
            Speaker("cat", speech_like(5.0, seed=3)),
        ],
    )
    for name in ("ben", "cat"):  # two tracks warn in the same block
        (room / "tracks" / name / "00001.opus").write_bytes(b"not ogg")
    tracks, _ = plan_tracks(manifest)
    span = output_span(tracks)
    results = []
    for threads in (1, 2):
        work = tmp_path / f"work-{threads}"
        work.mkdir()
        warnings: list[str] = []
        decoded = decode_pass(
            manifest, DirectorySource(room), span, tracks, work,
            block_frames=RATE, warn=warnings.append, threads=threads,
        )  # fmt: skip
        spills = [np.fromfile(path, dtype=np.float32) for path in decoded.spills]
        results.append((spills, warnings, decoded.meter.grams()))
    (one, warned_one, grams_one), (two, warned_two, grams_two) = results
    assert len(one) == 3 and all(len(spill) == span.frames for spill in one)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(grams_one, grams_two)
    # Reported in track order whatever the scheduling: ben's segment, then cat's.
    assert warned_one == warned_two
    assert [w.split("/")[3] for w in warned_one if "cannot be decoded" in w] == ["ben", "cat"]
    # ben starts late: silence before him, speech after.
    assert np.abs(one[1][: RATE // 2]).max() == 0
    assert np.abs(one[1][RATE // 2 : 2 * RATE]).max() > 0.01

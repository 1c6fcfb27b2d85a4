"""DecodeAhead: blocks in order, each track sequential, warnings in a fixed order, errors out."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from core.audio.timeline_plan import PlanBlock, Read
from workers.audio.decode_ahead import DecodeAhead, PlaceRow

TRACKS = ("a", "b", "c")
FRAMES = 100


def _blocks(count: int, silent_rows: dict[int, set[str]] | None = None) -> list[PlanBlock]:
    silent_rows = silent_rows or {}
    return [
        PlanBlock(
            index=k,
            start=k * FRAMES,
            frames=FRAMES,
            silence=(),
            reads=tuple(
                Read(tid, f"{tid}/{k}", 0, 0, FRAMES)
                for tid in TRACKS
                if tid not in silent_rows.get(k, set())
            ),
        )
        for k in range(count)
    ]


class FakeTracks:
    """Each row writes (row + 1) * 1000 + block into its samples, slowly and at random, and
    checks that its blocks come in order (a real TrackDecoder is sequential)."""

    def __init__(self, seed: int, fail_at: tuple[int, int] | None = None) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.last = [-1] * len(TRACKS)
        self.notes: list[list[str]] = [[] for _ in TRACKS]
        self.fail_at = fail_at

    def place(self, row: int) -> PlaceRow:
        def run(target: NDArray[np.float32], reads: Sequence[Read]) -> None:
            block = int(reads[0].segment_key.split("/")[1])
            with self.lock:
                assert block > self.last[row], "a track's blocks ran out of order"
                self.last[row] = block
                delay = self.rng.random() * 0.003
            time.sleep(delay)
            if (row, block) == self.fail_at:
                raise ValueError(f"segment {reads[0].segment_key} is corrupt")
            if block % 3 == row:
                self.notes[row].append(f"{TRACKS[row]}: note in block {block}")
            target[:] = (row + 1) * 1000 + block

        return run

    def taken(self, row: int) -> list[str]:
        found, self.notes[row][:] = list(self.notes[row]), []
        return found


def _run(
    seed: int, threads: int, blocks: list[PlanBlock]
) -> list[tuple[int, NDArray[np.float32], list[str]]]:
    fake = FakeTracks(seed)
    ahead = DecodeAhead(
        blocks, {tid: row for row, tid in enumerate(TRACKS)},
        [fake.place(row) for row in range(len(TRACKS))], fake.taken, threads=threads,
    )  # fmt: skip
    return [(block.index, samples.copy(), warnings) for block, samples, warnings in ahead]


@pytest.mark.parametrize("seed", range(5))
def test_blocks_come_in_order_with_every_row_and_the_same_warnings_whatever_the_timing(
    seed: int,
) -> None:
    blocks = _blocks(12, silent_rows={4: {"b"}, 7: {"a", "b", "c"}})
    reference = _run(seed=99, threads=1, blocks=blocks)
    result = _run(seed=seed, threads=3, blocks=blocks)
    assert [index for index, _, _ in result] == list(range(12))
    for (index, samples, warnings), (_, ref_samples, ref_warnings) in zip(
        result, reference, strict=True
    ):
        np.testing.assert_array_equal(samples, ref_samples)
        assert warnings == ref_warnings
        for row, tid in enumerate(TRACKS):
            silent = (index == 4 and tid == "b") or index == 7
            assert np.all(samples[row] == (0 if silent else (row + 1) * 1000 + index))
    assert [w for _, _, ws in result for w in ws][:2] == [
        "a: note in block 0",
        "b: note in block 1",
    ]


def test_a_failing_track_stops_the_pass_with_its_error() -> None:
    fake = FakeTracks(1, fail_at=(1, 5))
    ahead = DecodeAhead(
        _blocks(10), {tid: row for row, tid in enumerate(TRACKS)},
        [fake.place(row) for row in range(len(TRACKS))], fake.taken, threads=2,
    )  # fmt: skip
    seen = []
    with pytest.raises(ValueError, match="b/5 is corrupt"):
        for block, _, _ in ahead:
            seen.append(block.index)
    assert seen == [0, 1, 2, 3, 4]
    assert max(fake.last) <= 5 + 3  # nothing decoded further than `ahead` blocks past it


def test_decoding_runs_at_most_ahead_blocks_past_the_consumer() -> None:
    fake = FakeTracks(2)
    ahead = DecodeAhead(
        _blocks(20), {tid: row for row, tid in enumerate(TRACKS)},
        [fake.place(row) for row in range(len(TRACKS))], fake.taken, threads=3, ahead=2,
    )  # fmt: skip
    for block, _, _ in ahead:
        time.sleep(0.01)  # a slow consumer: the decoders must wait for it
        with fake.lock:
            assert max(fake.last) <= block.index + 2

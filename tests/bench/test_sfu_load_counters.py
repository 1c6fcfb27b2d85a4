"""The load clients' loss counting: sequence gaps, and 20 ms frames missing from the timestamp
line (a server that skips mix ticks loses audio without skipping sequence numbers)."""

from __future__ import annotations

from bench.sfu_load import SeqTracker


def test_sequence_gaps_count_as_expected_packets() -> None:
    tracker = SeqTracker()
    for seq, frame in ((65534, 0), (65535, 1), (1, 3), (2, 4)):  # 0 lost, across the wrap
        tracker.add(seq, frame * 960)
    assert (tracker.received, tracker.expected) == (4, 5)


def test_frames_missing_from_the_timestamp_line_count_as_lost() -> None:
    tracker = SeqTracker()
    start = 2**32 - 2 * 960
    for index, frame in enumerate([0, 1, 2, 7, 8]):  # contiguous sequence, 4 frames skipped
        tracker.add(100 + index, (start + frame * 960) % 2**32)
    assert (tracker.received, tracker.expected) == (5, 9)

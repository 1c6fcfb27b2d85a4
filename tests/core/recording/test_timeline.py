"""Timeline maths from synthetic packet streams: every packet at its true offset."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.recording.timeline import (
    AudioPacket,
    Gap,
    RoomClock,
    SenderReport,
    StreamStarted,
    TimelineEvent,
    TrackTimeline,
    unwrap,
)

FRAME = 960  # 20 ms at 48 kHz
OPUS_20MS = bytes.fromhex("f8fffe")  # TOC config 31 (CELT FB 20 ms), code 0
EPOCH = 1000.0  # monotonic reading at the room's epoch


def clock() -> RoomClock:
    return RoomClock(epoch_unix=1_700_000_000.0, epoch_monotonic=EPOCH)


def feed(
    timeline: TrackTimeline, packets: list[tuple[int, int, float]], ssrc: int = 7
) -> list[TimelineEvent]:
    events: list[TimelineEvent] = []
    for seq, ts, arrival in packets:
        events += timeline.push(ssrc, seq % 65536, ts % 2**32, arrival, OPUS_20MS)
    return events + timeline.flush()


def stream(
    n: int, *, seq0: int = 100, ts0: int = 5000, start: float = EPOCH + 1.0
) -> list[tuple[int, int, float]]:
    return [(seq0 + i, ts0 + i * FRAME, start + i * 0.02) for i in range(n)]


def audio(events: list[TimelineEvent]) -> list[AudioPacket]:
    return [e for e in events if isinstance(e, AudioPacket)]


def gaps(events: list[TimelineEvent]) -> list[Gap]:
    return [e for e in events if isinstance(e, Gap)]


def test_unwrap_crosses_both_ways() -> None:
    assert unwrap(2, 65534, 16) == 65538
    assert unwrap(65534, 65538, 16) == 65534
    assert unwrap(10, 2**32 - 960, 32) == 2**32 + 10


@given(st.integers(0, 2**40), st.lists(st.integers(-(2**15) + 1, 2**15 - 1), max_size=200))
def test_unwrap_recovers_any_walk_within_half_range(start: int, steps: list[int]) -> None:
    true, reference = start, start
    for step in steps:
        true += step
        got = unwrap(true % 65536, reference, 16)
        assert got == true
        reference = got


def test_in_order_stream_is_contiguous_and_placed_at_arrival() -> None:
    timeline = TrackTimeline(clock())
    events = feed(timeline, stream(50))
    assert isinstance(events[0], StreamStarted)
    packets = audio(events)
    assert [p.timestamp for p in packets] == [i * FRAME for i in range(50)]
    assert not gaps(events)
    assert timeline.anchor == 48_000  # first packet arrived 1 s after the epoch


def test_loss_becomes_a_loss_gap_at_its_true_place() -> None:
    packets = [p for p in stream(30) if p[0] not in (110, 111)]
    timeline = TrackTimeline(clock())
    events = feed(timeline, packets)
    (gap,) = gaps(events)
    assert (gap.kind, gap.timestamp, gap.samples, gap.lost_packets) == (
        "loss",
        10 * FRAME,
        2 * FRAME,
        2,
    )
    assert timeline.stats.lost == 2
    assert audio(events)[10].timestamp == 12 * FRAME


def test_reordered_packets_come_out_in_order_without_gaps() -> None:
    packets = stream(20)
    packets[5], packets[6] = packets[6], packets[5]
    packets[12], packets[15] = packets[15], packets[12]
    events = feed(TrackTimeline(clock()), packets)
    assert [p.sequence for p in audio(events)] == list(range(100, 120))
    assert not gaps(events)


def test_duplicates_are_dropped_and_counted() -> None:
    packets = stream(10)
    packets.insert(4, packets[3])
    packets.append(packets[9])
    timeline = TrackTimeline(clock())
    events = feed(timeline, packets)
    assert [p.sequence for p in audio(events)] == list(range(100, 110))
    assert timeline.stats.duplicates == 2


def test_packet_after_its_hole_timed_out_is_late_not_audio() -> None:
    packets = stream(20)
    late = packets.pop(5)
    packets.insert(15, (late[0], late[1], packets[14][2]))  # 200 ms late: hole already filled
    timeline = TrackTimeline(clock())
    events = feed(timeline, packets)
    assert timeline.stats.late == 1
    assert [(g.timestamp, g.samples) for g in gaps(events)] == [(5 * FRAME, FRAME)]
    assert [p.timestamp for p in audio(events)] == [i * FRAME for i in range(20) if i != 5]


def test_sequence_and_timestamp_wrap_around() -> None:
    packets = stream(100, seq0=65_500, ts0=2**32 - 30 * FRAME)
    events = feed(TrackTimeline(clock()), packets)
    assert [p.timestamp for p in audio(events)] == [i * FRAME for i in range(100)]
    assert [p.sequence for p in audio(events)] == list(range(65_500, 65_600))
    assert not gaps(events)
    assert sum(isinstance(e, StreamStarted) for e in events) == 1


def test_dtx_timestamp_jump_with_consecutive_sequence_is_a_dtx_gap() -> None:
    packets = stream(10)
    # 400 ms of DTX: next packet seq 110 but timestamp 20 frames later, arriving 400 ms later.
    packets += [(110 + i, 5000 + (30 + i) * FRAME, EPOCH + 1.0 + (30 + i) * 0.02) for i in range(5)]
    timeline = TrackTimeline(clock())
    events = feed(timeline, packets)
    (gap,) = gaps(events)
    assert (gap.kind, gap.timestamp, gap.samples, gap.lost_packets) == (
        "dtx",
        10 * FRAME,
        20 * FRAME,
        0,
    )
    assert timeline.stats.lost == 0
    assert audio(events)[-1].timestamp + FRAME == 35 * FRAME


def test_late_joiner_is_placed_at_its_arrival() -> None:
    timeline = TrackTimeline(clock())
    feed(timeline, stream(10, start=EPOCH + 12.5))
    assert timeline.anchor == 12.5 * 48_000


def test_anchor_uses_the_minimum_delay_packet_not_the_first() -> None:
    packets = stream(50, start=EPOCH + 2.0)
    jittered = [
        (s, t, a + (0.060 if i < 10 else 0.015 * (i % 3))) for i, (s, t, a) in enumerate(packets)
    ]
    jittered[30] = packets[30]  # one packet arrives with no extra delay
    timeline = TrackTimeline(clock())
    feed(timeline, jittered)
    assert timeline.anchor == 2 * 48_000


def test_rejoin_with_new_ssrc_starts_a_new_stream_at_its_own_place() -> None:
    timeline = TrackTimeline(clock())
    first = feed(timeline, stream(10, start=EPOCH + 1.0), ssrc=1)
    again = feed(timeline, stream(10, seq0=9000, ts0=123_456_789, start=EPOCH + 20.0), ssrc=2)
    assert [e.stream for e in first + again if isinstance(e, StreamStarted)] == [0, 1]
    assert [p.timestamp for p in audio(again)] == [i * FRAME for i in range(10)]
    assert timeline.anchor == 20 * 48_000
    assert not gaps(again)


def test_sender_reset_on_same_ssrc_starts_a_new_stream() -> None:
    timeline = TrackTimeline(clock())
    feed(timeline, stream(10))
    again = feed(timeline, stream(5, seq0=40_000, ts0=7, start=EPOCH + 5.0))
    assert any(isinstance(e, StreamStarted) and e.stream == 1 for e in again)
    assert timeline.anchor == 5 * 48_000


def test_sender_report_maps_to_stream_time() -> None:
    timeline = TrackTimeline(clock())
    feed(timeline, stream(10, ts0=2**32 - FRAME))
    report = timeline.sender_report(7, 1_700_000_001.5, 3 * FRAME - FRAME, EPOCH + 1.07)
    assert report == SenderReport(0, 1_700_000_001.5, 3 * FRAME, round(1.07 * 48_000))
    assert timeline.sender_report(99, 0.0, 0, EPOCH) is None


@given(
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(0, 3), min_size=5, max_size=120),
    st.sets(st.integers(1, 119), max_size=10),
)
def test_any_shuffle_within_the_window_keeps_every_packet_in_its_slot(
    seq0: int, ts0: int, displacements: list[int], dropped: set[int]
) -> None:
    n = len(displacements)
    packets = [(seq0 + i, ts0 + i * FRAME, EPOCH + 1 + i * 0.02) for i in range(n)]
    # Each packet may arrive up to 3 slots late, still within the 100 ms window.
    order = sorted(range(n), key=lambda i: i + displacements[i])
    arriving = [
        (packets[i][0], packets[i][1], EPOCH + 1 + position * 0.02)
        for position, i in enumerate(order)
        if i not in dropped
    ]
    timeline = TrackTimeline(clock())
    events = feed(timeline, arriving)
    kept = audio(events)
    # The first packet to arrive is stream time 0; any older one arriving after it is late.
    base = arriving[0][0] - seq0
    assert [(p.sequence - seq0) % 65536 for p in kept] == sorted(
        i for i in range(n) if i not in dropped and i >= base
    )
    assert timeline.stats.late == sum(1 for s, _, _ in arriving if s - seq0 < base)
    for p in kept:
        assert p.timestamp == ((p.sequence - seq0) % 65536 - base) * FRAME
    written = sum(p.samples for p in kept) + sum(g.samples for g in gaps(events))
    assert written == kept[-1].timestamp + FRAME

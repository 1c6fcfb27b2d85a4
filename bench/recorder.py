"""Recorder cost: CPU per recorded speaker-second and memory per track.

Real Opus packets (a sine encoded once by libopus) go through the whole recording path — the
tap's ``submit`` → bounded queue → writer thread (timeline, Ogg pages, sidecars, fsync) →
uploader thread (hash, store to a local-directory storage, read-back confirmation, delete) —
for ``--tracks`` speakers at once, as fast as the queue takes them. CPU is the process's CPU
time (every thread) over the run, divided by the speaker-seconds recorded.

Baseline, run side by side in the same invocation: the least any recorder could do — the same
packets through a bounded queue to a thread that appends the raw payloads to one file per track
(no timeline, no Ogg, no sidecar, no upload). Memory per track is measured separately with
tracemalloc: Python heap held by the writer with every track one second short of closing its
segment (the point where a segment's sidecar timing is largest).

Usage: ``python -m bench.recorder [--quick] [--tracks N] [--seconds S]``. Goal (issue 4):
≤ 0.2 % of one core per speaker and ≤ 5 MB per track. Full runs rewrite the ``recorder``
section of docs/performance.md; ``--quick`` only prints.
"""

from __future__ import annotations

import argparse
import queue
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from bench.report import machine_line, markdown_table, median, write_section
from core.adapters.storage_local import LocalStorage
from core.recording.timeline import RoomClock
from recorder.segment_writer import SegmentWriter
from recorder.spool import RecordingMeta, RecordingSpool
from recorder.uploader import Uploader

RATE = 48_000
FRAME = 960
EPOCH = 1000.0


def opus_packets(seconds: float) -> list[bytes]:
    """A 220 Hz sine with some noise, mono 32 kb/s Opus, 20 ms packets."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format, codec.bit_rate = RATE, "mono", "s16", 32_000
    codec.open()
    n = int(seconds * RATE) // FRAME
    t = np.arange(n * FRAME) / RATE
    rng = np.random.default_rng(1)
    pcm = (np.sin(2 * np.pi * 220 * t) * 9_000 + rng.normal(0, 600, t.size)).astype(np.int16)
    out: list[bytes] = []
    for i in range(n):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, i * FRAME : (i + 1) * FRAME], format="s16", layout="mono"
        )
        frame.sample_rate, frame.pts = RATE, i * FRAME
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out[:n]


def _feed(
    submit: Callable[[str, int, int, int, float, bytes], bool], tracks: int, packets: list[bytes]
) -> None:
    for i, payload in enumerate(packets):
        arrival = EPOCH + 1 + i * 0.02
        for t in range(tracks):
            while not submit(f"speaker{t}", 1000 + t, i, i * FRAME, arrival, payload):
                time.sleep(0.0005)  # queue full: wait, as a real-time feed would never outrun it


def run_recorder(root: Path, tracks: int, packets: list[bytes], segment_seconds: float) -> float:
    """CPU seconds to record and upload ``tracks`` × ``packets``."""
    storage = LocalStorage(root / "store")
    uploader = Uploader(storage)
    spool = RecordingSpool(root / "spool", "bench")
    spool.create(RecordingMeta("bench", "room", 1_700_000_000.0))
    writer = SegmentWriter(
        spool,
        RoomClock(1_700_000_000.0, EPOCH),
        segment_seconds=segment_seconds,
        on_segment_closed=uploader.on_segment_closed,
        monotonic=lambda: 0.0,
    )
    started = time.process_time()
    uploader.start()
    writer.start()
    _feed(writer.submit, tracks, packets)
    writer.close(timeout=600)
    if not uploader.close(timeout=600) or uploader.health().degraded:
        raise RuntimeError(f"uploader did not finish cleanly: {uploader.health()}")
    return time.process_time() - started


def run_baseline(root: Path, tracks: int, packets: list[bytes]) -> float:
    """CPU seconds for the raw-append baseline (module doc)."""
    q: queue.Queue[tuple[str, int, int, int, float, bytes] | None] = queue.Queue(maxsize=4096)
    directory = root / "raw"
    directory.mkdir(parents=True)

    def drain() -> None:
        files: dict[str, BinaryIO] = {}
        while (item := q.get()) is not None:
            handle = files.get(item[0])
            if handle is None:
                handle = files[item[0]] = open(directory / item[0], "wb")  # noqa: SIM115
            handle.write(item[5])
        for handle in files.values():
            handle.close()

    def submit(who: str, ssrc: int, seq: int, ts: int, arrival: float, payload: bytes) -> bool:
        try:
            q.put_nowait((who, ssrc, seq, ts, arrival, payload))
            return True
        except queue.Full:
            return False

    started = time.process_time()
    thread = threading.Thread(target=drain)
    thread.start()
    _feed(submit, tracks, packets)
    q.put(None)
    thread.join()
    return time.process_time() - started


def memory_per_track(
    root: Path, tracks: int, packets: list[bytes], segment_seconds: float
) -> float:
    """Bytes of Python heap the writer holds per track just before its segment closes."""
    held = packets[: int((segment_seconds - 1) * RATE / FRAME)]
    spool = RecordingSpool(root / "mem", "bench")
    spool.create(RecordingMeta("bench", "room", 1_700_000_000.0))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    writer = SegmentWriter(
        spool,
        RoomClock(1_700_000_000.0, EPOCH),
        segment_seconds=segment_seconds,
        monotonic=lambda: 0.0,
    )
    writer.start()
    _feed(writer.submit, tracks, held)
    while writer.health().queued:
        time.sleep(0.01)
    time.sleep(0.3)  # the last item is taken off the queue before it is written
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    writer.close()
    return used / tracks


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recorder", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (a smoke test)")
    parser.add_argument("--tracks", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    tracks = args.tracks or (3 if args.quick else 20)
    seconds = args.seconds or (4.0 if args.quick else 60.0)
    repeats = args.repeats or (1 if args.quick else 3)
    segment_seconds = 2.0 if args.quick else 30.0
    packets = opus_packets(max(seconds, segment_seconds))
    feed = packets[: int(seconds * RATE / FRAME)]
    speaker_seconds = tracks * len(feed) * FRAME / RATE

    recorder_cpu, baseline_cpu = [], []
    for _ in range(repeats):
        work = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
        try:
            baseline_cpu.append(run_baseline(work, tracks, feed))
            recorder_cpu.append(run_recorder(work, tracks, feed, segment_seconds))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="bench-recorder-"))
    try:
        per_track = memory_per_track(work, tracks, packets, segment_seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rec, base = median(recorder_cpu), median(baseline_cpu)
    rows = [
        [
            "recorder (writer + uploader to local storage)",
            speaker_seconds,
            rec,
            100 * rec / speaker_seconds,
            rec / base if base else float("nan"),
        ],
        ["baseline (raw payload append)", speaker_seconds, base, 100 * base / speaker_seconds, 1.0],
    ]
    table = markdown_table(
        ["path", "speaker-seconds", "CPU s (median)", "% of one core per speaker", "× baseline"],
        rows,
    )
    memory = markdown_table(
        ["tracks", "segment s", "heap per track (MB)", "goal (MB)"],
        [[tracks, segment_seconds, per_track / 1e6, 5.0]],
    )
    command = "python -m bench.recorder " + " ".join(argv) if argv else "python -m bench.recorder"
    body = "\n\n".join(
        [
            "## Recorder (bench/recorder.py)",
            (
                f"`{command.strip()}` — {tracks} speakers × {seconds:g} s, {repeats} repeats,"
                f" {segment_seconds:g} s segments; {machine_line()}."
            ),
            table,
            memory,
            (
                "Goal: ≤ 0.2 % of one core per speaker and ≤ 5 MB per track. CPU is process CPU"
                " time (all threads) per second of recorded audio; memory is tracemalloc heap"
                " held by the writer per track one second before its segment closes."
            ),
        ]
    )
    print(body)
    if not args.quick:
        write_section("recorder", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

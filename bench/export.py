"""Benchmark: `roomcast export` (MP3) and the full replay render vs ffmpeg amix + loudnorm.

Input: 4 speakers of speech-like Opus (32 kb/s, 30 s Ogg segments, the recorder's layout) taking
turns, generated once into a cache directory (``--cache``, default /tmp/roomcast-bench/export);
1 h each by default, 2 min with ``--quick``. Each contender runs in its own child process, so
wall time and peak memory (``ru_maxrss`` from ``wait4``) are that child's alone:

- ffmpeg: each speaker's segments concatenated (concat demuxer), ``amix=inputs=4,loudnorm``
  (single pass, I=-16, TP=-1) and libmp3lame 96 kb/s mono 44.1 kHz — the baseline;
- roomcast mp3: ``roomcast export`` to MP3 (decode, level, mix, measure, limit, encode, and the
  re-measurement of the encoded file);
- roomcast all: the whole replay (MP3, M4A, HLS, FLAC stems zip, waveform, timeline, chapters,
  every encoded output re-measured).

Every output's loudness is read by ffmpeg's ``ebur128`` (mono played as dual-mono). Figures are
medians over ``--repeat`` runs; ``--quick`` writes nothing to docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.report import machine_line, markdown_table, median, write_section

DEFAULT_CACHE = Path("/tmp/roomcast-bench/export")
#: Runs per contender; the table shows medians (the machine is shared and noisy).
DEFAULT_REPEAT = 3
SPEAKERS = 4
RATE = 48_000
BASE_SECONDS = 240  # speech-like audio encoded per speaker, then tiled to the room's length


def _speaker_packets(index: int, seconds: float) -> list[bytes]:
    """Packets of one speaker: speech in their turns (rotating), quiet room noise between."""
    import numpy as np

    from tests.workers.audio.rooms import opus_packets, speech_like

    base = min(seconds, BASE_SECONDS)
    frames = int(base * RATE)
    rng = np.random.default_rng(100 + index)
    speech = speech_like(base, seed=index + 1, level=(0.5, 0.15, 0.3, 0.08)[index])
    turn = np.zeros(frames)
    t = 0.0
    speaker = 0
    while t < base:
        length = float(rng.uniform(8.0, 30.0))
        if speaker == index:
            turn[int(t * RATE) : int((t + length) * RATE)] = 1.0
        t += length
        speaker = (speaker + 1) % SPEAKERS
    noise = rng.normal(0.0, 10 ** (-62 / 20), frames)
    packets = opus_packets(speech * turn + noise)
    repeat = int(np.ceil(seconds / base))
    return (packets * repeat)[: int(seconds * RATE) // 960]


def room_dir(cache: Path, seconds: float) -> Path:
    return cache / f"room-{SPEAKERS}x{int(seconds)}s"


def generate(cache: Path, seconds: float) -> Path:
    """The room's directory (manifest.json + tracks/), generated once per length.

    Runs in a child process (``--child-generate``) so that the benchmark's own process stays
    small: Linux hands a parent's peak RSS down to the children it starts.
    """
    import numpy as np

    from tests.workers.audio.rooms import Speaker, write_room

    room = room_dir(cache, seconds)
    if (room / "manifest.json").exists():
        return room
    partial = room.with_name(room.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    speakers = [
        Speaker(f"speaker-{i}", np.zeros(0), packets=_speaker_packets(i, seconds),
                display_name=f"Speaker {i}")
        for i in range(SPEAKERS)
    ]  # fmt: skip
    write_room(partial, speakers, recording_id="bench", segment_seconds=30.0)
    os.replace(partial, room)
    return room


def _child(argv: list[str]) -> tuple[float, int]:
    """Run argv; (wall seconds, peak RSS in MB) of that child alone."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({process.returncode}): {stderr[-2000:]}")
    return wall, usage.ru_maxrss // 1024


def ffmpeg_command(room: Path, out: Path) -> list[str]:
    lists = []
    for track in sorted((room / "tracks").iterdir()):
        listing = out.parent / f"{track.name}.txt"
        listing.write_text("".join(f"file '{p}'\n" for p in sorted(track.glob("*.opus"))))
        lists.append(listing)
    inputs = [
        arg for listing in lists for arg in ("-f", "concat", "-safe", "0", "-i", str(listing))
    ]
    mix = "".join(f"[{i}:a]" for i in range(len(lists)))
    return [
        "ffmpeg", "-nostdin", "-v", "error", "-y", *inputs, "-filter_complex",
        f"{mix}amix=inputs={len(lists)},loudnorm=I=-16:TP=-1",
        "-c:a", "libmp3lame", "-b:a", "96k", "-ar", "44100", "-ac", "1", str(out),
    ]  # fmt: skip


def ebur128(path: Path) -> tuple[float, float]:
    """(I LUFS, true peak dBTP) by ffmpeg, mono played as dual-mono."""
    target = path / "playlist.m3u8" if path.is_dir() else path
    run = subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", str(target), "-af",
         "aformat=channel_layouts=mono,pan=stereo|c0=c0|c1=c0,ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    summary = run.stderr[run.stderr.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    return float(integrated.group(1)) if integrated else float("nan"), (
        float(peak.group(1)) if peak else float("nan")
    )


def render_all_child(manifest: Path, out: Path) -> int:
    """Child process: the whole replay, as the worker will render it."""
    from core.settings import load_settings
    from workers.audio.export import choose_source, read_manifest
    from workers.audio.pipeline import RenderOptions, render_replay

    settings = load_settings()
    parsed = read_manifest(manifest)
    source = choose_source(parsed, manifest, settings)
    render_replay(parsed, source, out, RenderOptions.from_settings(settings.audio))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench.export", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="4 x 2 min, no docs written")
    parser.add_argument("--minutes", type=float, default=None, help="length of the room")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--no-all", action="store_true", help="skip the all-outputs render")
    parser.add_argument("--child-all", nargs=2, metavar=("MANIFEST", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--child-generate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_all:
        return render_all_child(Path(args.child_all[0]), Path(args.child_all[1]))
    if args.child_generate:
        generate(args.cache, args.child_generate)
        return 0
    minutes = args.minutes or (2.0 if args.quick else 60.0)
    started = time.perf_counter()
    room = room_dir(args.cache, minutes * 60)
    subprocess.run([sys.executable, "-m", "bench.export", "--cache", str(args.cache),
                    "--child-generate", str(minutes * 60)], check=True)  # fmt: skip
    print(f"input ready in {time.perf_counter() - started:.1f} s: {room}", flush=True)
    work = args.cache / "out"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    roomcast = str(Path(sys.executable).parent / "roomcast")
    contenders = {
        "ffmpeg amix,loudnorm + libmp3lame": (ffmpeg_command(room, work / "ffmpeg.mp3"),
                                              work / "ffmpeg.mp3"),
        "roomcast export (MP3)": ([roomcast, "export", str(room / "manifest.json"), "-o",
                                   str(work / "roomcast.mp3")], work / "roomcast.mp3"),
    }  # fmt: skip
    if not args.no_all:
        contenders["roomcast all outputs"] = (
            [sys.executable, "-m", "bench.export", "--child-all", str(room / "manifest.json"),
             str(work / "all")],
            work / "all" / "replay.mp3",
        )  # fmt: skip
    walls: dict[str, list[float]] = {name: [] for name in contenders}
    rss: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.repeat):
        for name, (command, _) in contenders.items():
            wall, peak_mb = _child(command)
            walls[name].append(wall)
            rss[name].append(peak_mb)
            print(f"{name}: {wall:.1f} s, {peak_mb} MB", flush=True)
    base = median(walls["ffmpeg amix,loudnorm + libmp3lame"])
    rows: list[list[object]] = []
    for name, (_, output) in contenders.items():
        integrated, peak = ebur128(output)
        rows.append([name, median(walls[name]), median(walls[name]) / base, integrated, peak,
                     int(median(rss[name]))])  # fmt: skip
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    table = markdown_table(
        ["pipeline", "wall s (median)", "× ffmpeg", "I LUFS (ebur128)", "TP dBTP", "peak RSS MB"],
        rows,
    )
    print(table)
    print(f"(each peak RSS includes up to {own} MB inherited from the benchmark process)")
    if not args.quick:
        shown = "python -m bench.export" + (f" --minutes {args.minutes:g}" if args.minutes else "")
        shown += f" --repeat {args.repeat}" if args.repeat != DEFAULT_REPEAT else ""
        ratios = {name: (median(walls[name]) / base, int(median(rss[name]))) for name in contenders}
        write_section("export", _section(shown, minutes, args.repeat, table, own, ratios))
    return 0


def _verdict(ratios: dict[str, tuple[float, int]]) -> str:
    """Which goals this run met, from (× ffmpeg, peak MB) per contender."""
    goals = {"roomcast export (MP3)": 0.5, "roomcast all outputs": 1.0}
    parts = []
    for name, limit in goals.items():
        if name in ratios:
            ratio, peak = ratios[name]
            met = ratio <= limit and peak <= 500
            parts.append(f"{name}: {ratio:.2f}× (goal ≤ {limit:g}×), {peak} MB — "
                         + ("met" if met else "**not met**"))  # fmt: skip
    return "This run: " + "; ".join(parts) + "."


def _section(
    command: str,
    minutes: float,
    repeat: int,
    table: str,
    own: int,
    ratios: dict[str, tuple[float, int]],
) -> str:
    return f"""## Export: {SPEAKERS} speakers × {minutes:g} min → MP3

`{command}` — {machine_line()}; median of {repeat} run(s), each contender in its own child
process (wall time; peak memory is that child's `ru_maxrss`, which on Linux includes up to
{own} MB inherited from the benchmark's own process). Input: {SPEAKERS} speakers of
speech-like Opus 32 kb/s in 30 s Ogg segments taking turns. Loudness of every output read by
ffmpeg's `ebur128` (mono played as dual-mono). Target −16 LUFS, ≤ −1 dBTP.

{table}

"roomcast export (MP3)" includes decoding, per-speaker levelling, the mix, the true-peak limiter,
MP3 encoding and the measurement of the encoded output; "all outputs" adds M4A and HLS (one AAC
encode muxed twice), FLAC stems, waveform, timeline and chapters, every encoded output measured.
Each roomcast figure includes the process's start-up (Python and its imports, ~1 s of CPU,
mostly SciPy); ffmpeg's start-up is negligible.

Goals (issue 5): MP3 path ≤ 0.5 × ffmpeg's time, all outputs ≤ 1 ×, ≤ 500 MB. How the time is
spent (docs/post-production.md, "Pipeline"): Opus decoded by the system's libopus on two threads,
each track running ahead of the block being metered; a limiter-loss estimate from 1 s in every
10 s; then one pass that mixes, limits and feeds every encoder on its own thread (MP3 by the
system's libmp3lame at LAME's default quality 3, fed at 44.1 kHz by libswresample: the same
encoder, quality and resampler as ffmpeg's), each encoder's output decoded and metered as it is
written; numpy's BLAS single-threaded. The machine is shared: compare ratios, not seconds.

{_verdict(ratios)}
"""


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The per-speaker stems of a live render: one FLAC per track, written as the room plays.

A speaker who joins late gets silence up to the moment they joined, so every stem lasts the
whole output and lines up with the mix (as the offline render's stems do). At the end the
files take the names the offline render gives them (their track's index in the *final*
manifest, which a late joiner's sorting may change) and go into ``stems.zip``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from core.recording.manifest import Manifest
from workers.audio.encode import BlockEncoder, EncodeSpec, ThreadedEncoder
from workers.audio.staging import stem_filename, zip_stems


class LiveStems:
    """Stems written into ``directory`` (see module doc)."""

    def __init__(self, directory: Path, block_frames: int) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._block = block_frames
        self._encoders: dict[str, ThreadedEncoder] = {}

    def join(self, track_id: str, position: int) -> None:
        """Start ``track_id``'s stem, silent for the ``position`` frames already rendered."""
        path = self.directory / f"live-{len(self._encoders):03d}.flac"
        encoder = ThreadedEncoder(BlockEncoder(path, EncodeSpec("flac")))
        for done in range(0, position, self._block):
            encoder.write(np.zeros(min(self._block, position - done), np.float32))
        self._encoders[track_id] = encoder

    def write(self, track_id: str, samples: NDArray[np.float32]) -> None:
        """The track's next samples, as decoded and placed (no gain)."""
        self._encoders[track_id].write(samples)

    def close(self, manifest: Manifest, archive: Path) -> Path | None:
        """Finish every stem and zip them into ``archive``; None when there are none."""
        order = {t.participant_id: i for i, t in enumerate(manifest.tracks)}
        encoders, self._encoders = self._encoders, {}
        finished = []
        for track_id, encoder in encoders.items():
            written = encoder.close()
            final = written.with_name(stem_filename(order.get(track_id, len(order)), track_id))
            written.rename(final)
            finished.append(final)
        if not finished:
            return None
        path = zip_stems(archive, sorted(finished, key=lambda p: p.name))
        shutil.rmtree(self.directory, ignore_errors=True)
        return path

    def abort(self) -> None:
        """Drop every stem (idempotent)."""
        for encoder in self._encoders.values():
            encoder.abort()
        self._encoders = {}

"""Pass 1's decoding: every track's blocks decoded on a thread pool, ahead of the consumer.

A :class:`~workers.audio.decode.TrackDecoder` is sequential (block k+1 of a track continues
where block k ended), but tracks are independent. Decoding a block's tracks in parallel and
waiting for all of them before the next block left a core idle whenever one track of the
block cost more than the others (10 min of the benchmark room: 1.7 of 2 cores busy).
:class:`DecodeAhead` instead starts a track's next block as soon as its previous one is done,
on whichever thread is free, up to ``ahead`` blocks past the one being consumed (memory: that
many blocks of samples), and yields the blocks in order.

Warnings are kept per track and block and handed out with their block, in track order, so a
render's record is the same whatever the scheduling.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from core.audio.timeline_plan import PlanBlock, Read

#: Decodes one track's reads of a block into its row of the block (in place).
PlaceRow = Callable[[NDArray[np.float32], Sequence[Read]], None]


class DecodeAhead:
    """Yields ``(block, samples, warnings)`` for every block of ``blocks`` in order.

    ``place[row](target, reads)`` decodes one track's reads of a block into ``target`` (its
    row of the block); ``note(row)`` must return the warnings that track raised since the
    last call (it is called on the thread that just decoded the row).
    """

    def __init__(
        self,
        blocks: Sequence[PlanBlock],
        rows: dict[str, int],
        place: Sequence[PlaceRow],
        note: Callable[[int], list[str]],
        *,
        threads: int,
        ahead: int = 3,
    ) -> None:
        self._blocks = blocks
        self._tracks = len(place)
        self._place = place
        self._note = note
        # Each row's reads per block, and the blocks in which each row has anything to read.
        self._jobs: list[dict[int, list[Read]]] = []
        for block in blocks:
            by_row: dict[int, list[Read]] = {}
            for read in block.reads:
                by_row.setdefault(rows[read.track_id], []).append(read)
            self._jobs.append(by_row)
        self._todo = [
            [k for k, jobs in enumerate(self._jobs) if row in jobs] for row in range(self._tracks)
        ]
        self._position = [0] * self._tracks  #: index into _todo[row] of its next block
        self._busy = [False] * self._tracks
        self._remaining = [len(jobs) for jobs in self._jobs]
        self._samples: dict[int, NDArray[np.float32]] = {}
        self._warnings: dict[tuple[int, int], list[str]] = {}
        self._limit = ahead
        self._ahead = ahead
        self._error: BaseException | None = None
        self._closed = False
        self._changed = threading.Condition()
        self._pool = ThreadPoolExecutor(max(1, threads), "decode")

    def __iter__(self) -> Iterator[tuple[PlanBlock, NDArray[np.float32], list[str]]]:
        try:
            with self._changed:
                for row in range(self._tracks):
                    self._start(row)
            for index, block in enumerate(self._blocks):
                with self._changed:
                    while self._remaining[index] and self._error is None:
                        self._changed.wait()
                    if self._error is not None:
                        raise self._error
                    samples = self._samples.pop(index, None)
                    warnings = [
                        message
                        for row in range(self._tracks)
                        for message in self._warnings.pop((row, index), [])
                    ]
                    self._limit = index + 1 + self._ahead
                    for row in range(self._tracks):
                        self._start(row)
                if samples is None:  # nobody speaks in this block
                    samples = np.zeros((self._tracks, block.frames), dtype=np.float32)
                yield block, samples, warnings
        finally:
            self.close()

    def close(self) -> None:
        """Stop scheduling and wait for the blocks being decoded (idempotent)."""
        with self._changed:
            self._closed = True
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _start(self, row: int) -> None:
        """Submit ``row``'s next block if it is free and the block is within reach (locked)."""
        if self._busy[row] or self._error is not None or self._closed:
            return
        todo = self._todo[row]
        if self._position[row] >= len(todo) or todo[self._position[row]] >= self._limit:
            return
        index = todo[self._position[row]]
        if index not in self._samples:
            frames = self._blocks[index].frames
            self._samples[index] = np.zeros((self._tracks, frames), dtype=np.float32)
        self._busy[row] = True
        self._pool.submit(self._run, row, index, self._samples[index][row])

    def _run(self, row: int, index: int, target: NDArray[np.float32]) -> None:
        try:
            self._place[row](target, self._jobs[index][row])
            failure = None
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            failure = exc
        notes = self._note(row)
        with self._changed:
            if notes:
                self._warnings[(row, index)] = notes
            if failure is not None and self._error is None:
                self._error = failure
            self._busy[row] = False
            self._position[row] += 1
            self._remaining[index] -= 1
            self._start(row)
            self._changed.notify_all()

"""The recorder: speakers' Opus packets, unchanged, into timed Ogg Opus segments in a spool.

- :mod:`recorder.segment_writer` — :class:`~recorder.segment_writer.SegmentWriter`, the tap the
  live plane feeds (``on_rtp``); a worker thread behind a bounded queue.
- :mod:`recorder.ogg_opus` — the Ogg Opus writer and page reader.
- :mod:`recorder.spool` — spool layout, crash-safe writes, the restart scan.

The timeline maths, sidecar and manifest are pure and live in :mod:`core.recording`.
"""

import core  # noqa: F401 - first: sets up numpy's BLAS before numpy loads (core/__init__.py)

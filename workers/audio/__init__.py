"""Post-production: decode a recording's segments, mix, level, normalise and encode a replay.

Entry points: :func:`workers.audio.pipeline.render_replay` (a manifest and a segment source to
a directory of outputs) and :func:`workers.audio.export.export_manifest` (``roomcast export``).
Pure decisions live in :mod:`core.audio`; this package is the PyAV + numpy shell around them.
"""

"""Where a render reads segments from: a local directory (a spool or a copy) or a Storage.

A source answers :meth:`SegmentSource.open` with a readable binary file for a manifest key, or
raises :class:`~core.errors.SegmentMissing` naming the key. Transient storage failures
(:class:`~core.errors.StorageUnavailable`) pass through untouched so a caller can retry.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, Protocol

from core.errors import ObjectNotFound, SegmentMissing
from core.storage import Storage


class SegmentSource(Protocol):
    """Opens recorded segments by their manifest key."""

    def open(self, key: str) -> BinaryIO:
        """A binary file positioned at the start of the segment; the caller closes it."""
        ...

    def describe(self) -> str:
        """Where segments come from, for messages."""
        ...


class DirectorySource:
    """Segments under a local directory.

    A manifest key ``recordings/<recording_id>/tracks/<p>/<i>.opus`` is looked up as
    ``<root>/<key>`` (a copy of the storage tree), then as ``<root>/tracks/<p>/<i>.opus`` (the
    recorder's spool directory of that recording, where ``manifest.json`` sits) and then as
    ``<root>/<recording_id>/tracks/...`` (the spool root).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def candidates(self, key: str) -> list[Path]:
        """The paths tried for ``key``, in order."""
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts) or key.startswith("/"):
            raise SegmentMissing(key, f"segment key {key!r} is not a relative path")
        paths = [self.root.joinpath(*parts)]
        if len(parts) > 2 and parts[0] == "recordings":
            paths.append(self.root.joinpath(*parts[2:]))
            paths.append(self.root.joinpath(*parts[1:]))
        return paths

    def open(self, key: str) -> BinaryIO:
        for path in self.candidates(key):
            if path.is_file():
                return open(path, "rb")
        raise SegmentMissing(key, f"segment {key} is missing: not found under {self.root}")

    def describe(self) -> str:
        return f"directory {self.root}"


class StorageSource:
    """Segments in the configured :class:`~core.storage.Storage` (local or S3).

    Segments are small (30 s of 32 kb/s Opus is ~120 kB), so each is read whole into memory;
    only one segment per track is open at a time.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def open(self, key: str) -> BinaryIO:
        try:
            data = self.storage.get_bytes(key)
        except ObjectNotFound as exc:
            raise SegmentMissing(key, f"segment {key} is missing from storage") from exc
        return io.BytesIO(data)

    def describe(self) -> str:
        return f"storage {type(self.storage).__name__}"

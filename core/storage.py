"""The storage port: where recordings, replays and feeds' media live.

Two adapters implement :class:`Storage`: a local directory
(:mod:`core.adapters.storage_local`) and S3-compatible object storage
(:mod:`core.adapters.storage_s3`); :func:`core.adapters.storage_factory.build_storage` picks one
from settings. Methods are synchronous (boto3 and file I/O block): code on an event loop calls
them through ``asyncio.to_thread`` / ``anyio.to_thread.run_sync``.

Errors every method may raise: :class:`core.errors.InvalidObjectKey` (before any I/O),
:class:`core.errors.ObjectNotFound`, :class:`core.errors.StorageUnavailable` (transient: retry
later), :class:`core.errors.InvalidRange` for byte ranges outside the object.

This module also holds the two pieces of pure logic both adapters share: byte-range resolution
and the Content-Disposition header value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable
from urllib.parse import quote

from core.errors import InvalidInput, InvalidRange

#: Default chunk size of :meth:`Storage.iter_range` (a good HTTP response write size).
DEFAULT_CHUNK_SIZE = 64 * 1024


class ByteStream(Iterator[bytes], Protocol):
    """What :meth:`Storage.iter_range` returns: chunks of bytes, and ``close()`` to stop early."""

    def close(self) -> None:
        """Release the underlying file or connection (idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What storage knows about one object."""

    key: str
    """The object's key (see :mod:`core.storage_keys`)."""
    size: int
    """Size in bytes."""
    etag: str
    """Opaque version tag, changes when the object is rewritten (no quotes)."""
    content_type: str | None
    """Content type stored with the object; ``None`` in :meth:`Storage.list` results, whose
    S3 listing does not carry it (call :meth:`Storage.head`)."""
    last_modified: datetime
    """When the object was last written (timezone-aware, UTC)."""


@runtime_checkable
class Storage(Protocol):
    """Object storage. Keys are validated before any I/O; writes are all-or-nothing."""

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> ObjectInfo:
        """Store the file at ``path`` under ``key`` (S3: in parts above the threshold)."""
        ...

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        """Store ``data`` under ``key``. Content type defaults to the key's extension's."""
        ...

    def get_bytes(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        """The object's bytes, or the inclusive range ``start..end`` (``end`` clipped to size)."""
        ...

    def iter_range(
        self, key: str, start: int, end: int, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> ByteStream:
        """Stream the inclusive range ``start..end`` in chunks.

        The object is opened (and ObjectNotFound / InvalidRange raised) when this is called,
        not on the first ``next()``, so an HTTP handler can answer 404/416 before streaming.
        Close the iterator (or exhaust it) to release the file or connection.
        """
        ...

    def download_file(self, key: str, path: Path) -> None:
        """Write the object to ``path`` atomically (``path`` never holds a partial file)."""
        ...

    def head(self, key: str) -> ObjectInfo:
        """Metadata of the object at ``key``; raises ObjectNotFound."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object at ``key``; deleting a missing key is not an error."""
        ...

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix``, in key order (content_type is None)."""
        ...

    def presigned_get_url(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str | None = None,
        filename: str | None = None,
    ) -> str | None:
        """A time-limited GET URL (S3), or ``None`` when the backend cannot sign (local).

        ``content_type`` and ``filename`` become the response's Content-Type and
        Content-Disposition (attachment).
        """
        ...

    def check(self) -> None:
        """Readiness probe: returns, or raises StorageUnavailable naming the cause."""
        ...


def resolve_range(size: int, start: int | None, end: int | None) -> tuple[int, int] | None:
    """Turn a requested inclusive byte range into ``(first, last)`` within an object of ``size``.

    ``None``/``None`` means the whole object; ``None`` for a bound means "from the start" /
    "to the end"; ``end`` past the object is clipped, like HTTP ranges. Returns ``None`` for
    the whole of an empty object (there is no valid inclusive range to read).

    Raises :class:`InvalidRange` when ``start`` is at or past the end of a non-empty object,
    when a range is asked of an empty object, or when ``end < start``; :class:`InvalidInput`
    for negative bounds.
    """
    if (start is not None and start < 0) or (end is not None and end < 0):
        raise InvalidInput(f"byte range bounds must not be negative (got {start}..{end})")
    first = 0 if start is None else start
    if end is not None and end < first:
        raise InvalidRange(f"byte range {first}..{end} ends before it starts")
    if size == 0:
        if start is None and end is None:
            return None
        raise InvalidRange(f"byte range {first}..{end} asked of an empty object")
    if first >= size:
        raise InvalidRange(f"byte range starts at {first}, the object has {size} bytes")
    last = size - 1 if end is None else min(end, size - 1)
    return first, last


def content_disposition(filename: str, kind: Literal["attachment", "inline"] = "attachment") -> str:
    """A Content-Disposition value safe for any filename (RFC 6266 / RFC 5987).

    Non-ASCII names get an ASCII fallback plus ``filename*=UTF-8''...``; quotes, backslashes and
    control characters are dropped from the fallback so the header cannot be broken.
    """
    cleaned = "".join(ch for ch in filename if ch.isprintable() and ch not in '"\\/')
    cleaned = cleaned.strip() or "download"
    fallback = cleaned.encode("ascii", "replace").decode("ascii").replace("?", "_")
    value = f'{kind}; filename="{fallback}"'
    if fallback != cleaned:
        value += f"; filename*=UTF-8''{quote(cleaned, safe='')}"
    return value


class RangeReader:
    """Iterator over at most ``length`` bytes of an open binary stream, in ``chunk_size`` reads.

    Both adapters return one from :meth:`Storage.iter_range`: the stream (a file or an S3
    response body) is opened eagerly by the adapter and closed here when the range is exhausted,
    on :meth:`close`, or when the iterator is collected.
    """

    def __init__(self, stream: _Readable, length: int, chunk_size: int) -> None:
        self._stream: _Readable | None = None
        if chunk_size <= 0:
            stream.close()
            raise InvalidInput(f"chunk_size must be positive (got {chunk_size})")
        self._stream = stream
        self._left = length
        self._chunk_size = chunk_size

    def __iter__(self) -> RangeReader:
        return self

    def __next__(self) -> bytes:
        if self._stream is None or self._left <= 0:
            self.close()
            raise StopIteration
        chunk = self._stream.read(min(self._chunk_size, self._left))
        if not chunk:
            # The object shrank under us; stop rather than loop on empty reads.
            self.close()
            raise StopIteration
        self._left -= len(chunk)
        return bytes(chunk)

    def close(self) -> None:
        """Release the underlying file or connection (idempotent)."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def __del__(self) -> None:
        self.close()


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...

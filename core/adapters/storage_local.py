"""The storage port on a local directory (the single-machine default).

Each object is a file at ``<root>/<key>``. Writes go to a hidden temporary file in the target
directory, are fsynced and renamed into place, and the directory is fsynced: a crash leaves
either the old object or the new one, never half a file. Temporary files are named
``.<anything>.<32 hex>.partial`` and never listed. The content type is kept in the
``user.roomcast.content_type`` extended attribute when the filesystem supports it, otherwise it
is derived from the key's extension.

Every path is resolved and must stay inside the root, so a symlink cannot lead a key out of it.
"""

from __future__ import annotations

import builtins
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from core.errors import (
    InvalidObjectKey,
    InvalidRange,
    ObjectKeyConflict,
    ObjectNotFound,
    StorageUnavailable,
)
from core.storage import DEFAULT_CHUNK_SIZE, ByteStream, ObjectInfo, RangeReader, resolve_range
from core.storage_keys import guess_content_type, validate_key, validate_prefix

_XATTR = "user.roomcast.content_type"
_PARTIAL = re.compile(r"^\..+\.[0-9a-f]{32}\.partial$")
_COPY_BUFFER = 1024 * 1024


def _partial_name(name: str) -> str:
    return f".{name}.{uuid.uuid4().hex}.partial"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``target`` through a fsynced temporary file; returns the temporary path used."""
    temp = target.with_name(_partial_name(target.name))
    try:
        with open(temp, "xb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return temp


class LocalStorage:
    """:class:`core.storage.Storage` on a directory tree rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------

    def path_for(self, key: str) -> Path:
        """The file that holds ``key`` (validated, resolved, inside the root)."""
        validate_key(key)
        return self._inside(self.root / key, key)

    def _inside(self, path: Path, key: str) -> Path:
        resolved = path.resolve()
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise InvalidObjectKey(f"invalid object key {key!r}: resolves outside the storage root")
        return resolved

    # -- writes ------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        return self._put(key, lambda handle: handle.write(data), content_type)

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> ObjectInfo:
        validate_key(key)
        with open(path, "rb") as source:  # a missing source is the caller's error: let it raise

            def copy(handle: BinaryIO) -> None:
                shutil.copyfileobj(source, handle, _COPY_BUFFER)

            return self._put(key, copy, content_type)

    def _put(
        self, key: str, write: Callable[[BinaryIO], object], content_type: str | None
    ) -> ObjectInfo:
        target = self.path_for(key)
        kind = content_type or guess_content_type(key)

        def write_and_tag(handle: BinaryIO) -> None:
            write(handle)
            try:
                os.setxattr(handle.fileno(), _XATTR, kind.encode("utf-8"))
            except OSError:
                pass  # no xattr support here: head() falls back to the extension's type

        try:
            # A concurrent delete may prune the directory between mkdir and open: retry.
            for attempt in range(3):
                try:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _write_atomically(target, write_and_tag)
                    break
                except FileNotFoundError:
                    if attempt == 2:
                        raise
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectKeyConflict(
                f"cannot store {key!r}: a prefix of it is an object, or it is a prefix of others"
                " (the local backend keeps objects as files)"
            ) from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {key!r} under {self.root}: {exc}") from exc
        return self.head(key)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {key!r}: {exc}") from exc
        self._prune_empty_dirs(path.parent)

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return  # not empty (or gone): stop
            directory = directory.parent

    # -- reads -------------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo:
        path = self.path_for(key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"no object at {key!r}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key!r}: {exc}") from exc
        if not path.is_file():
            raise ObjectNotFound(f"no object at {key!r}")
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            etag=_etag(stat),
            content_type=_stored_content_type(path) or guess_content_type(key),
            last_modified=datetime.fromtimestamp(stat.st_mtime, UTC),
        )

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def _open(self, key: str) -> BinaryIO:
        path = self.path_for(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(f"no object at {key!r}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {key!r}: {exc}") from exc

    def get_bytes(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        with self._open(key) as handle:
            span = resolve_range(os.fstat(handle.fileno()).st_size, start, end)
            if span is None:
                return b""
            handle.seek(span[0])
            return handle.read(span[1] - span[0] + 1)

    def iter_range(
        self, key: str, start: int, end: int, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> ByteStream:
        handle = self._open(key)
        try:
            span = resolve_range(os.fstat(handle.fileno()).st_size, start, end)
            if span is None:  # only for an unbounded range, which an int start rules out
                raise InvalidRange(f"byte range {start}..{end} asked of an empty object")
            handle.seek(span[0])
        except BaseException:
            handle.close()
            raise
        return RangeReader(handle, span[1] - span[0] + 1, chunk_size)

    def download_file(self, key: str, path: Path) -> None:
        destination = Path(path)
        with self._open(key) as source:
            destination.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(
                destination, lambda handle: shutil.copyfileobj(source, handle, _COPY_BUFFER)
            )

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        complete = prefix.rpartition("/")[0]
        base = self._inside(self.root / complete, prefix) if complete else self.root
        keys: builtins.list[str] = []
        for directory, _subdirs, files in os.walk(base):
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                if _PARTIAL.match(name):
                    continue
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort(key=lambda k: k.encode("utf-8"))  # S3's order: UTF-8 bytes
        return self._infos(keys)

    def _infos(self, keys: Sequence[str]) -> Iterator[ObjectInfo]:
        for key in keys:
            try:
                info = self.head(key)
            except ObjectNotFound:
                continue  # deleted since the walk
            yield ObjectInfo(info.key, info.size, info.etag, None, info.last_modified)

    # -- the rest ----------------------------------------------------------------------------

    def presigned_get_url(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str | None = None,
        filename: str | None = None,
    ) -> str | None:
        """Always ``None``: a directory cannot sign URLs; the API streams the file itself."""
        validate_key(key)
        return None

    def check(self) -> None:
        """Create the root if needed and prove a file can be written, synced and removed."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / _partial_name("check")
            with open(probe, "xb") as handle:
                handle.write(b"ok")
                os.fsync(handle.fileno())
            probe.unlink()
        except OSError as exc:
            raise StorageUnavailable(
                f"local storage at {self.root} is not writable: {exc}"
            ) from exc


def _etag(stat: os.stat_result) -> str:
    # A rewrite renames a new inode into place, so the inode alone tells versions apart even
    # when size and mtime (coarse on some filesystems) match.
    return f"{stat.st_ino:x}-{stat.st_size:x}-{stat.st_mtime_ns:x}"


def _stored_content_type(path: Path) -> str | None:
    try:
        return os.getxattr(path, _XATTR).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None

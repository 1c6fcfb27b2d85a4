"""The storage contract: the same tests against the local directory and S3 (moto over HTTP).

Backend-specific behaviour (presigned URLs, multipart ETags, outages, symlinks) follows at the
end, each against the real thing.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.adapters.storage_factory import build_storage
from core.adapters.storage_local import LocalStorage
from core.adapters.storage_s3 import S3Storage
from core.errors import (
    InvalidInput,
    InvalidObjectKey,
    InvalidRange,
    ObjectKeyConflict,
    ObjectNotFound,
    StorageUnavailable,
)
from core.settings import Settings
from core.storage import ObjectInfo, Storage
from tests.support.moto_server import MotoServer

MB = 1024 * 1024
DATA = bytes(range(256)) * 4  # 1024 bytes, every byte value, position-dependent


def _with_threshold(settings: Settings, mb: int) -> Settings:
    storage = settings.storage.model_copy(update={"s3_multipart_threshold_mb": mb})
    return settings.model_copy(update={"storage": storage})


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, settings: Settings) -> Storage:
    """Each adapter in turn, multipart threshold lowered to S3's minimum part size."""
    chosen = settings if request.param == "local" else request.getfixturevalue("s3_settings")
    return build_storage(_with_threshold(chosen, 5))


@pytest.fixture
def s3(s3_settings: Settings) -> S3Storage:
    built = build_storage(_with_threshold(s3_settings, 5))
    assert isinstance(built, S3Storage)
    return built


@pytest.fixture
def local(settings: Settings) -> LocalStorage:
    built = build_storage(settings)
    assert isinstance(built, LocalStorage)
    return built


def _is_recent(moment: datetime) -> bool:
    return moment.tzinfo is not None and abs(datetime.now(UTC) - moment) < timedelta(minutes=5)


# -- writes and reads --------------------------------------------------------------------------


def test_the_factory_builds_adapters_that_satisfy_the_port(storage: Storage) -> None:
    assert isinstance(storage, Storage)
    storage.check()


def test_put_bytes_then_get_head_exists(storage: Storage) -> None:
    info = storage.put_bytes("replays/r1/episode.mp3", DATA)
    assert info.key == "replays/r1/episode.mp3"
    assert info.size == len(DATA)
    assert info.etag and '"' not in info.etag
    assert info.content_type == "audio/mpeg"  # from the extension
    assert _is_recent(info.last_modified)
    assert storage.get_bytes("replays/r1/episode.mp3") == DATA
    assert storage.head("replays/r1/episode.mp3") == info
    assert storage.exists("replays/r1/episode.mp3")
    assert not storage.exists("replays/r1/episode.m4a")


def test_an_explicit_content_type_is_kept(storage: Storage) -> None:
    info = storage.put_bytes("rooms/r1/manifest", b"{}", content_type="application/json")
    assert info.content_type == "application/json"
    assert storage.head("rooms/r1/manifest").content_type == "application/json"
    assert storage.put_bytes("blob", b"x").content_type == "application/octet-stream"


def test_an_overwrite_replaces_content_and_etag(storage: Storage) -> None:
    first = storage.put_bytes("k.json", b"[1]")
    second = storage.put_bytes("k.json", b"[1, 2]")
    assert second.etag != first.etag
    assert second.size == 6
    assert storage.get_bytes("k.json") == b"[1, 2]"


def test_empty_objects(storage: Storage) -> None:
    assert storage.put_bytes("empty.txt", b"").size == 0
    assert storage.get_bytes("empty.txt") == b""
    with pytest.raises(InvalidRange):
        storage.get_bytes("empty.txt", start=0)


def test_put_file_and_download_file(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "in.ogg"
    payload = os.urandom(300_000)
    source.write_bytes(payload)
    info = storage.put_file("rooms/r1/tracks/a/000001.ogg", source)
    assert (info.size, info.content_type) == (len(payload), "audio/ogg")
    target = tmp_path / "out" / "deeper" / "copy.ogg"
    storage.download_file("rooms/r1/tracks/a/000001.ogg", target)
    assert target.read_bytes() == payload
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.ogg"]  # no temp files


def test_a_large_file_goes_up_in_parts_and_comes_back_intact(
    storage: Storage, tmp_path: Path
) -> None:
    source = tmp_path / "big.mp3"
    payload = os.urandom(11 * MB)
    source.write_bytes(payload)
    info = storage.put_file("replays/r1/big.mp3", source, content_type="audio/mpeg")
    assert info.size == len(payload)
    assert info.content_type == "audio/mpeg"
    assert (
        storage.get_bytes("replays/r1/big.mp3", start=5 * MB - 2, end=5 * MB + 1)
        == (payload[5 * MB - 2 : 5 * MB + 2])
    )
    target = tmp_path / "big-copy.mp3"
    storage.download_file("replays/r1/big.mp3", target)
    assert target.read_bytes() == payload


# -- byte ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 1, DATA[:2]),
        (100, 199, DATA[100:200]),
        (1000, None, DATA[1000:]),
        (None, 9, DATA[:10]),
        (1020, 5000, DATA[1020:]),
        (1023, 1023, DATA[-1:]),
        (None, None, DATA),
    ],
)
def test_get_bytes_ranges_are_inclusive(
    storage: Storage, start: int | None, end: int | None, expected: bytes
) -> None:
    storage.put_bytes("r.bin", DATA)
    assert storage.get_bytes("r.bin", start=start, end=end) == expected


@pytest.mark.parametrize(("start", "end"), [(1024, None), (2000, 3000), (10, 5)])
def test_unsatisfiable_ranges_raise_invalid_range(
    storage: Storage, start: int, end: int | None
) -> None:
    storage.put_bytes("r.bin", DATA)
    with pytest.raises(InvalidRange):
        storage.get_bytes("r.bin", start=start, end=end)


def test_iter_range_streams_the_range_in_chunks(storage: Storage) -> None:
    storage.put_bytes("r.bin", DATA)
    chunks = list(storage.iter_range("r.bin", 10, 509, chunk_size=128))
    assert b"".join(chunks) == DATA[10:510]
    assert [len(c) for c in chunks] == [128, 128, 128, 116]
    assert b"".join(storage.iter_range("r.bin", 1000, 99_999)) == DATA[1000:]


def test_iter_range_fails_when_called_not_when_iterated(storage: Storage) -> None:
    storage.put_bytes("r.bin", DATA)
    with pytest.raises(ObjectNotFound):
        storage.iter_range("missing.bin", 0, 10)
    with pytest.raises(InvalidRange):
        storage.iter_range("r.bin", 5000, 6000)


def test_an_abandoned_stream_can_be_closed(storage: Storage) -> None:
    storage.put_bytes("r.bin", DATA)
    stream = storage.iter_range("r.bin", 0, 1023, chunk_size=16)
    assert next(stream) == DATA[:16]
    stream.close()
    assert list(stream) == []


# -- delete and list ---------------------------------------------------------------------------


def test_delete_is_idempotent(storage: Storage) -> None:
    storage.put_bytes("rooms/r1/a.ogg", b"a")
    storage.delete("rooms/r1/a.ogg")
    assert not storage.exists("rooms/r1/a.ogg")
    storage.delete("rooms/r1/a.ogg")
    storage.delete("never/was/there.ogg")
    with pytest.raises(ObjectNotFound):
        storage.head("rooms/r1/a.ogg")


def test_list_by_prefix_in_key_order(storage: Storage) -> None:
    for key in ["a/2", "a/1", "a/b/3", "ab/4", "b/5"]:
        storage.put_bytes(key, key.encode())
    assert [o.key for o in storage.list("a/")] == ["a/1", "a/2", "a/b/3"]
    assert [o.key for o in storage.list("a")] == ["a/1", "a/2", "a/b/3", "ab/4"]
    assert [o.key for o in storage.list("a/b")] == ["a/b/3"]
    assert [o.key for o in storage.list("")] == ["a/1", "a/2", "a/b/3", "ab/4", "b/5"]
    assert list(storage.list("nothing/")) == []
    listed = next(iter(storage.list("b/")))
    head = storage.head("b/5")
    assert listed == ObjectInfo("b/5", 3, head.etag, None, listed.last_modified)
    assert abs(listed.last_modified - head.last_modified) < timedelta(seconds=1)


def test_deleted_objects_leave_the_listing(storage: Storage) -> None:
    storage.put_bytes("rooms/r1/t/1.ogg", b"1")
    storage.put_bytes("rooms/r1/t/2.ogg", b"2")
    storage.delete("rooms/r1/t/1.ogg")
    assert [o.key for o in storage.list("rooms/")] == ["rooms/r1/t/2.ogg"]


# -- refusals ----------------------------------------------------------------------------------

BAD_KEYS = ["../escape.txt", "/etc/passwd", "a/../../escape", "a\\b", "nul\x00.txt", "", "a//b"]


def _every_method(storage: Storage, key: str, tmp_path: Path) -> list[Callable[[], Any]]:
    source = tmp_path / "src.bin"
    source.write_bytes(b"payload")
    return [
        lambda: storage.put_bytes(key, b"payload"),
        lambda: storage.put_file(key, source),
        lambda: storage.get_bytes(key),
        lambda: storage.iter_range(key, 0, 1),
        lambda: storage.download_file(key, tmp_path / "dl.bin"),
        lambda: storage.head(key),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
        lambda: storage.presigned_get_url(key, expires_in=60),
    ]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_by_every_method_and_nothing_is_written(
    storage: Storage, key: str, tmp_path: Path, settings: Settings
) -> None:
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    for call in _every_method(storage, key, tmp_path):
        with pytest.raises(InvalidObjectKey):
            call()
    assert list(storage.list("")) == []
    assert not (tmp_path / "dl.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({*outside_before, "src.bin"})


@pytest.mark.parametrize("prefix", ["../", "/abs", "a\\b"])
def test_bad_prefixes_are_refused(storage: Storage, prefix: str) -> None:
    with pytest.raises(InvalidObjectKey):
        storage.list(prefix)


def test_missing_objects_raise_object_not_found(storage: Storage, tmp_path: Path) -> None:
    calls: list[Callable[[], object]] = [
        lambda: storage.head("missing/x.mp3"),
        lambda: storage.get_bytes("missing/x.mp3"),
        lambda: storage.get_bytes("missing/x.mp3", start=0, end=1),
        lambda: storage.download_file("missing/x.mp3", tmp_path / "x.mp3"),
    ]
    for call in calls:
        with pytest.raises(ObjectNotFound) as caught:
            call()
        assert caught.value.code == "object_not_found"
    assert not (tmp_path / "x.mp3").exists()


# -- S3 only -----------------------------------------------------------------------------------


def test_s3_multipart_upload_used_parts_of_the_threshold_size(
    s3: S3Storage, tmp_path: Path
) -> None:
    source = tmp_path / "big.m4a"
    source.write_bytes(os.urandom(11 * MB))
    info = s3.put_file("replays/r1/big.m4a", source)
    assert info.etag.endswith("-3")  # 5 MB + 5 MB + 1 MB
    small = tmp_path / "small.m4a"
    small.write_bytes(os.urandom(MB))
    assert "-" not in s3.put_file("replays/r1/small.m4a", small).etag


def test_s3_presigned_url_serves_the_bytes_with_the_requested_headers(s3: S3Storage) -> None:
    s3.put_bytes("replays/r1/episode.mp3", DATA, content_type="application/octet-stream")
    url = s3.presigned_get_url(
        "replays/r1/episode.mp3",
        expires_in=300,
        content_type="audio/mpeg",
        filename="Épisode 1.mp3",
    )
    assert url is not None and url.startswith(s3.endpoint)
    assert "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == DATA
        assert response.headers["Content-Type"] == "audio/mpeg"
        assert response.headers["Content-Disposition"] == (
            "attachment; filename=\"_pisode 1.mp3\"; filename*=UTF-8''%C3%89pisode%201.mp3"
        )


def test_s3_presigned_lifetime_is_bounded(s3: S3Storage) -> None:
    with pytest.raises(InvalidInput):
        s3.presigned_get_url("a.mp3", expires_in=0)
    with pytest.raises(InvalidInput):
        s3.presigned_get_url("a.mp3", expires_in=8 * 24 * 3600)


def test_s3_outage_raises_storage_unavailable_then_recovers(
    s3: S3Storage, moto_server: MotoServer
) -> None:
    s3.put_bytes("before.txt", b"kept")
    moto_server.stop()
    try:
        with pytest.raises(StorageUnavailable, match="cannot reach http://127.0.0.1") as caught:
            s3.check()
        assert caught.value.code == "storage_unavailable"
        assert caught.value.dependency == "storage"
        with pytest.raises(StorageUnavailable):
            s3.put_bytes("during.txt", b"lost?")
        with pytest.raises(StorageUnavailable):
            s3.get_bytes("before.txt")
    finally:
        moto_server.start()
    # moto keeps state in memory: the bucket is gone after a restart, and check() says so.
    with pytest.raises(StorageUnavailable, match="does not exist"):
        s3.check()


def test_s3_missing_bucket_is_named_by_check(s3_settings: Settings) -> None:
    storage = s3_settings.storage.model_copy(update={"s3_bucket": "no-such-bucket"})
    missing = build_storage(s3_settings.model_copy(update={"storage": storage}))
    with pytest.raises(StorageUnavailable, match="'no-such-bucket' does not exist"):
        missing.check()


# -- local only --------------------------------------------------------------------------------


def test_local_objects_are_plain_files_under_the_root(
    local: LocalStorage, settings: Settings
) -> None:
    local.put_bytes("rooms/r1/manifest.json", b"{}")
    assert (settings.storage_dir / "rooms/r1/manifest.json").read_bytes() == b"{}"
    assert (
        local.path_for("rooms/r1/manifest.json")
        == (settings.storage_dir / "rooms/r1/manifest.json").resolve()
    )


def test_local_failed_write_leaves_no_file_and_keeps_the_old_object(local: LocalStorage) -> None:
    local.put_bytes("k.txt", b"old")
    with pytest.raises(TypeError):
        local.put_bytes("k.txt", "not bytes")  # type: ignore[arg-type]
    assert local.get_bytes("k.txt") == b"old"
    assert sorted(p.name for p in local.root.iterdir()) == ["k.txt"]


def test_local_partial_files_are_never_listed(local: LocalStorage) -> None:
    local.put_bytes("a/x.ogg", b"x")
    (local.root / "a" / f".x.ogg.{'0' * 32}.partial").write_bytes(b"half")
    assert [o.key for o in local.list("")] == ["a/x.ogg"]


def test_local_symlinks_cannot_lead_outside_the_root(local: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    local.root.mkdir(parents=True, exist_ok=True)
    (local.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidObjectKey, match="outside the storage root"):
        local.put_bytes("link/evil.txt", b"x")
    with pytest.raises(InvalidObjectKey, match="outside the storage root"):
        list(local.list("link/"))
    assert list(outside.iterdir()) == []


def test_local_key_that_clashes_with_a_folder_is_a_conflict(local: LocalStorage) -> None:
    local.put_bytes("a/b", b"1")
    with pytest.raises(ObjectKeyConflict):
        local.put_bytes("a", b"2")
    with pytest.raises(ObjectKeyConflict):
        local.put_bytes("a/b/c", b"3")
    assert [o.key for o in local.list("")] == ["a/b"]


def test_local_delete_prunes_empty_folders_but_not_the_root(local: LocalStorage) -> None:
    local.put_bytes("rooms/r1/t/1.ogg", b"1")
    local.delete("rooms/r1/t/1.ogg")
    assert list(local.root.iterdir()) == []


def test_local_presigned_url_is_none(local: LocalStorage) -> None:
    local.put_bytes("a.mp3", b"x")
    assert local.presigned_get_url("a.mp3", expires_in=60, filename="a.mp3") is None


def test_local_check_fails_when_the_root_cannot_be_a_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageUnavailable, match="not writable"):
        LocalStorage(blocker / "storage").check()


def test_put_file_of_a_missing_source_raises_and_stores_nothing(
    storage: Storage, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        storage.put_file("a.ogg", tmp_path / "no-such-file.ogg")
    assert not storage.exists("a.ogg")

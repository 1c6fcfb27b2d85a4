"""The storage port on S3-compatible object storage (AWS S3, MinIO, R2, moto).

boto3's errors stop here: every call runs inside :func:`_boto_edge`, which turns them into
Roomcast's storage errors (``raise ... from exc``) — 404 into ObjectNotFound, 416 into
InvalidRange, connection failures, 5xx, throttling and refused credentials into
StorageUnavailable, anything else into StorageError with S3's code in the message.

Files above ``s3_multipart_threshold_mb`` are uploaded in parts of that size by boto3's
transfer manager, which aborts the multipart upload if a part fails (no orphaned parts).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from core.errors import (
    InvalidInput,
    InvalidRange,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
)
from core.settings import StorageSettings
from core.storage import (
    DEFAULT_CHUNK_SIZE,
    ByteStream,
    ObjectInfo,
    RangeReader,
    content_disposition,
    resolve_range,
)
from core.storage_keys import guess_content_type, validate_key, validate_prefix

_MB = 1024 * 1024
#: S3's limit on presigned URL lifetime (SigV4).
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "RequestTimeout",
        "ServiceUnavailable",
        "InternalError",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
    }
)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _range_header(start: int | None, end: int | None) -> str | None:
    """HTTP Range for an inclusive range; checks what can be checked without the size."""
    if start is None and end is None:
        return None
    # An object size larger than any bound: validates signs and order only.
    resolve_range(max(start or 0, end or 0) + 1, start, end)
    return f"bytes={start or 0}-{'' if end is None else end}"


class S3Storage:
    """:class:`core.storage.Storage` on one S3 bucket."""

    def __init__(self, config: StorageSettings) -> None:
        self.bucket = config.s3_bucket
        self.endpoint = config.s3_endpoint_url or "AWS S3"
        secret = config.s3_secret_access_key.get_secret_value()
        session = boto3.session.Session()
        # One client per storage: boto3 clients are thread-safe, sessions are not.
        self._client: Any = session.client(
            "s3",
            endpoint_url=config.s3_endpoint_url or None,
            region_name=config.s3_region,
            aws_access_key_id=config.s3_access_key_id or None,
            aws_secret_access_key=secret or None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path" if config.s3_path_style else "auto"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )
        part_size = config.s3_multipart_threshold_mb * _MB
        self._transfer = TransferConfig(
            multipart_threshold=part_size, multipart_chunksize=part_size, max_concurrency=4
        )

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, endpoint={self.endpoint!r})"

    @contextmanager
    def _boto_edge(self, action: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError, Boto3Error) as exc:
            raise self.translate_error(exc, action, key) from exc

    def translate_error(
        self, exc: BaseException, action: str, key: str | None
    ) -> StorageError | InvalidRange:
        """The Roomcast error for a boto3/botocore exception raised while doing ``action``."""
        where = f"{action} {key!r}" if key is not None else action
        cause = exc.__context__ if isinstance(exc, Boto3Error) else exc
        if isinstance(cause, ClientError):
            error = cause.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code == "NoSuchBucket" or (key is None and status == 404):
                return StorageUnavailable(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint}"
                )
            if code in _NOT_FOUND_CODES or status == 404:
                return ObjectNotFound(f"no object at {key!r}")
            if code == "InvalidRange" or status == 416:
                return InvalidRange(f"{where}: the byte range is outside the object")
            if status in (401, 403):
                return StorageUnavailable(
                    f"{where}: access denied by {self.endpoint} ({code}); check the S3 credentials"
                )
            if status >= 500 or code in _TRANSIENT_CODES:
                return StorageUnavailable(f"{where}: {self.endpoint} answered {status} {code}")
            return StorageError(f"{where}: S3 error {code or status}: {error.get('Message', '')}")
        if isinstance(cause, BotoCoreError):
            return StorageUnavailable(f"{where}: cannot reach {self.endpoint}: {cause}")
        return StorageError(f"{where}: {exc}")

    def _info(self, key: str, response: dict[str, Any], *, with_type: bool = True) -> ObjectInfo:
        return ObjectInfo(
            key=key,
            size=int(response.get("ContentLength", response.get("Size", 0))),
            etag=str(response.get("ETag", "")).strip('"'),
            content_type=response.get("ContentType") if with_type else None,
            last_modified=response["LastModified"],
        )

    # -- writes ------------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        validate_key(key)
        with self._boto_edge("put", key):
            self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type or guess_content_type(key),
            )
        return self.head(key)

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> ObjectInfo:
        validate_key(key)
        if not Path(path).is_file():
            raise FileNotFoundError(f"no file to upload at {path}")
        with self._boto_edge("put", key):
            self._client.upload_file(
                str(path),
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type or guess_content_type(key)},
                Config=self._transfer,
            )
        return self.head(key)

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._boto_edge("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=key)

    # -- reads -------------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        with self._boto_edge("head", key):
            response = self._client.head_object(Bucket=self.bucket, Key=key)
        return self._info(key, response)

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except ObjectNotFound:
            return False
        return True

    def _get(self, key: str, start: int | None, end: int | None) -> dict[str, Any]:
        validate_key(key)
        header = _range_header(start, end)
        extra = {"Range": header} if header else {}
        with self._boto_edge("get", key):
            response: dict[str, Any] = self._client.get_object(Bucket=self.bucket, Key=key, **extra)
        return response

    def get_bytes(self, key: str, *, start: int | None = None, end: int | None = None) -> bytes:
        body = self._get(key, start, end)["Body"]
        try:
            with self._boto_edge("get", key):
                return bytes(body.read())
        finally:
            body.close()

    def iter_range(
        self, key: str, start: int, end: int, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> ByteStream:
        response = self._get(key, start, end)
        return _S3RangeReader(
            self, key, response["Body"], int(response["ContentLength"]), chunk_size
        )

    def download_file(self, key: str, path: Path) -> None:
        validate_key(key)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # boto3 writes to a temporary name next to ``path`` and renames it when complete.
        with self._boto_edge("download", key):
            self._client.download_file(self.bucket, key, str(path), Config=self._transfer)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        return self._list(prefix)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=prefix))
        while True:
            with self._boto_edge("list", prefix):
                page = next(pages, None)
            if page is None:
                return
            entries: builtins.list[dict[str, Any]] = page.get("Contents", [])
            for entry in entries:
                yield self._info(entry["Key"], entry, with_type=False)

    # -- the rest ----------------------------------------------------------------------------

    def presigned_get_url(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str | None = None,
        filename: str | None = None,
    ) -> str | None:
        validate_key(key)
        if not 1 <= expires_in <= MAX_PRESIGN_SECONDS:
            raise InvalidInput(
                f"presigned URL lifetime must be 1..{MAX_PRESIGN_SECONDS} s (got {expires_in})"
            )
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ResponseContentType"] = content_type
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        with self._boto_edge("presign", key):
            url: str = self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in
            )
        return url

    def check(self) -> None:
        """HEAD the bucket: proves the endpoint answers, the bucket exists and we may use it."""
        with self._boto_edge(f"check bucket {self.bucket!r}"):
            self._client.head_bucket(Bucket=self.bucket)


class _S3RangeReader(RangeReader):
    """A :class:`RangeReader` over an S3 body that translates errors raised mid-stream."""

    def __init__(self, owner: S3Storage, key: str, body: Any, length: int, chunk_size: int) -> None:
        super().__init__(body, length, chunk_size)
        self._owner = owner
        self._key = key

    def __next__(self) -> bytes:
        try:
            return super().__next__()
        except (ClientError, BotoCoreError) as exc:
            self.close()
            raise self._owner.translate_error(exc, "get", self._key) from exc

"""moto's standalone S3 server for the session, on 127.0.0.1 and a free port, over real HTTP.

``moto_server`` yields a :class:`MotoServer`: ``.endpoint_url``, ``.stop()`` and ``.start()``
(restart on the same port, to simulate an outage; moto keeps state in memory, so a restart
empties it). ``s3_settings`` returns :class:`core.settings.Settings` for the s3 backend with a
fresh bucket, and revives the server first if an earlier test left it stopped.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pydantic import SecretStr

from core.adapters.subprocesses import die_with_parent, stop_process_group
from core.settings import Settings
from tests.support.net import free_port, wait_for_port

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


class MotoServer:
    """One moto server subprocess; start/stop keep the same port."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server (idempotent) and wait until it accepts connections."""
        if self.running:
            return
        binary = Path(sys.executable).with_name("moto_server")
        command = [str(binary)] if binary.exists() else [sys.executable, "-m", "moto.server"]
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                [*command, "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 (only prctl: fork-safe)
            )
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"moto_server did not start; see {self._log_path}") from None

    def stop(self) -> None:
        """Stop the server and wait until it is gone (the port refuses connections)."""
        if self._process is not None:
            stop_process_group(self._process, signal.SIGTERM, timeout=5)
            self._process = None

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset endpoint)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """The session's moto server on 127.0.0.1."""
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    server = MotoServer(free_port(), log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client for the test server (explicit keys: never the credential chain)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@pytest.fixture
def s3_settings(settings: Settings, moto_server: MotoServer) -> Iterator[Settings]:
    """Settings for the s3 backend against moto, with a fresh, empty bucket."""
    moto_server.start()  # idempotent; revives it if an earlier test stopped it
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    client = s3_client(moto_server.endpoint_url)
    client.create_bucket(Bucket=bucket)
    storage = settings.storage.model_copy(
        update={
            "backend": "s3",
            "s3_bucket": bucket,
            "s3_endpoint_url": moto_server.endpoint_url,
            "s3_region": REGION,
            "s3_access_key_id": ACCESS_KEY,
            "s3_secret_access_key": SecretStr(SECRET_KEY),
            "s3_path_style": True,
        }
    )
    yield settings.model_copy(update={"storage": storage})
    moto_server.start()

"""A real PostgreSQL for tests, started and removed by the test session itself.

Fixtures:

- ``postgres_url`` (session): ``ROOMCAST_TEST_DATABASE_URL`` when set; otherwise a private
  PostgreSQL server (initdb into a temporary directory, listening on 127.0.0.1 only, its unix
  socket inside that directory) and a database in it, as a ``postgresql+psycopg://`` URL.
- ``postgres_database_url`` (function): a fresh, empty database on that same server, dropped
  after the test, for tests that must not see each other's tables (migrations).

PostgreSQL refuses to run as root, so when the tests run as uid 0 the data directory is owned by
the ``postgres`` system user and the server binaries run through ``runuser -u postgres --``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.net import free_port

ENV_URL = "ROOMCAST_TEST_DATABASE_URL"
SERVER_USER = "postgres"
DATABASE = "roomcast_test"


def _bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb, or fail in one line."""
    candidates = [
        Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()
    ]
    if not candidates:
        found = shutil.which("initdb")
        if found:
            return Path(found).parent
        pytest.fail(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb);"
            f" install postgresql or set {ENV_URL}",
            pytrace=False,
        )
    return max(candidates, key=lambda p: _version_key(p.parent.name))


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def _as_server_user() -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"{Path(argv[len(_as_server_user())]).name} failed ({result.returncode}):"
            f" {(result.stderr or result.stdout).strip()[-2000:]}",
            pytrace=False,
        )


def _admin_conninfo(url: str) -> str:
    """A libpq connection string for the server's maintenance database."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url``; return its SQLAlchemy URL."""
    with psycopg.connect(_admin_conninfo(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name``, disconnecting whoever is still in it."""
    with psycopg.connect(_admin_conninfo(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database for this test session (see module docstring)."""
    configured = os.environ.get(ENV_URL)
    if configured:
        yield configured
        return
    bin_dir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="roomcast-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, log = root / "data", root / "server.log"
    port = free_port()
    as_user = _as_server_user()
    started = False
    try:
        _run(
            [
                *as_user,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SERVER_USER,
                "--auth=trust",
                "--no-sync",
                "--no-locale",
                "-E",
                "UTF8",
            ]
        )
        # fsync off and small buffers: a throwaway server on a shared test machine.
        options = (
            f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
            " -c synchronous_commit=off -c shared_buffers=16MB -c max_connections=60"
        )
        _run(
            [
                *as_user,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ]
        )
        started = True
        server = f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{port}/postgres"
        yield create_database(server, DATABASE)
    finally:
        if started:
            subprocess.run(
                [
                    *as_user,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_database_url(postgres_url: str) -> Iterator[str]:
    """A fresh empty database on the session's server, dropped after the test."""
    name = f"roomcast_{uuid.uuid4().hex[:12]}"
    url = create_database(postgres_url, name)
    try:
        yield url
    finally:
        drop_database(postgres_url, name)

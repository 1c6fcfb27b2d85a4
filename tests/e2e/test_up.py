"""``roomcast up`` as a user runs it: ready within 60 s; Ctrl-C, SIGTERM or even SIGKILL stops it
and every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port

ROOMCAST = str(Path(sys.executable).with_name("roomcast"))


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process, or None once it is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    state, ppid = fields[0], int(fields[1])
    return None if state in {"Z", "X"} else (ppid, state)


def descendants(root: int) -> dict[int, str]:
    """Every live process below ``root``, with its command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (info := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = info[0]
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                found[pid] = cmdline.decode(errors="replace")
                frontier.append(pid)
    return found


def wait_ready(url: str, process: subprocess.Popen[bytes], within: float) -> dict[str, object]:
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"roomcast up exited with {process.returncode} before being ready")
        try:
            response = httpx.get(url, timeout=5)
            last = response.json()
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.25)
    pytest.fail(f"/readyz not 200 within {within} s; last answer: {last}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "exit_code"),
    [(signal.SIGINT, 0), (signal.SIGTERM, 0), (signal.SIGKILL, -signal.SIGKILL)],
    ids=["ctrl-c", "sigterm", "sigkill"],
)
def test_up_serves_until_stopped_and_leaves_no_child(
    tmp_path: Path, sig: signal.Signals, exit_code: int
) -> None:
    """SIGKILL leaves no handler to run: the children's parent-death signal stops them."""
    api_port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env.update(
        ROOMCAST_VAR_DIR=str(tmp_path / "var"),
        ROOMCAST_API__PORT=str(api_port),
        ROOMCAST_REDIS__PORT=str(redis_port),
        ROOMCAST_LOG_LEVEL="WARNING",
    )
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen([ROOMCAST, "up"], env=env, cwd=tmp_path, stdout=log, stderr=log)
    children: dict[int, str] = {}
    try:
        started = time.monotonic()
        body = wait_ready(f"http://127.0.0.1:{api_port}/readyz", process, within=60)
        ready_after = time.monotonic() - started
        assert body["status"] == "ready"
        assert ready_after < 60

        children = descendants(process.pid)
        assert any("redis-server" in cmd and f":{redis_port}" in cmd for cmd in children.values())
        assert sum("celery" in cmd for cmd in children.values()) >= 2  # main + 1 pool process
        assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()
        assert (tmp_path / "var" / "roomcast.db").is_file()

        process.send_signal(sig)
        stopping = time.monotonic()
        assert process.wait(timeout=15) == exit_code
        assert time.monotonic() - stopping < 15
        # Orphans get their parent-death signal and need a moment to stop and be reaped.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_stat(pid) for pid in children):
            time.sleep(0.05)
        left = {pid: cmd for pid, cmd in children.items() if _stat(pid) is not None}
        assert not left, f"orphaned after Ctrl-C: {left}"
        assert time.monotonic() - stopping < 15
        output = (tmp_path / "up.log").read_text(errors="replace")
        assert f"API http://127.0.0.1:{api_port}" in output
    finally:
        if process.poll() is None:
            process.kill()
        for pid in children:
            if _stat(pid) is not None:
                os.kill(pid, signal.SIGKILL)
        log.close()

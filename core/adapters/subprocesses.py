"""Child processes that never outlive us: own process group, parent-death signal, kill on timeout."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1
# Loaded before any fork: a preexec_fn must not search for libraries (that spawns ldconfig).
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """``preexec_fn``: on Linux, SIGTERM the child when the thread that started it dies.

    It covers the case no signal handler can: the supervisor itself being SIGKILLed.
    """
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def die_with_parent_killed() -> None:
    """``preexec_fn``: as :func:`die_with_parent`, with SIGKILL — for a Celery worker whose tasks
    run as long as a room (a live-render follower): a warm shutdown would wait for them and
    even a cold one can take longer than the supervisor's death allows. Celery's prefork
    children already die with their parent (SIGKILL), so nothing is left behind, and a killed
    follower loses nothing (the full render runs at room end)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def stop_process_group(
    process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float
) -> int | None:
    """Send ``sig`` to the child's process group, wait ``timeout`` s, then SIGKILL the group.

    The child must have been started with ``start_new_session=True``. Returns the exit code.
    """
    if process.poll() is None:
        _signal_group(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    # Grandchildren (e.g. Celery's pool) may outlive the leader; the group still names them.
    _signal_group(process.pid, signal.SIGKILL)
    return process.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass

"""Process-wide set-up of a live node, applied once by each entry point that runs one.

A live node's process is tuned for its media plane, not for whatever else shares the
interpreter. The entry points that start a live node call :func:`prepare_live_process` once,
before serving:

- ``roomcast live`` (standalone or clustered; also the docker ``live`` service),
  in :mod:`roomcast.cli`;
- ``roomcast up``'s live node, through :func:`live.node.mount_live`;
- the uvicorn factories ``live.node:app_from_env`` and ``live.cluster:app_from_env``.

Building the node's objects (``LiveNode``, a room's ``RoomMixer``) changes nothing
process-wide, so in-process tests and tools that construct them keep their interpreter as is.
"""

from __future__ import annotations

import sys
from typing import Final

__all__ = ["GIL_SWITCH_INTERVAL", "prepare_live_process"]

#: The interpreter's GIL switch interval in a live node's process (seconds; the default is 5 ms).
GIL_SWITCH_INTERVAL: Final = 0.0005


def prepare_live_process() -> None:
    """Tune this process for a live node (idempotent; never raises the switch interval)."""
    # Each room's mixer renders on its own worker thread, which hands the GIL back and forth
    # a few dozen times per 20 ms tick (every PyAV call releases it). While the event loop is
    # busy sending, each hand-back waited up to the default 5 ms switch interval: a tick's
    # render then took longer than the tick and the mix clock fell behind (mix stalls). A
    # shorter interval bounds that wait.
    if sys.getswitchinterval() > GIL_SWITCH_INTERVAL:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)

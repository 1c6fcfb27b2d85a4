"""Live rooms: the WebRTC media plane on aiortc (forwarding, room mix, active speakers).

``live.media_room.MediaRoom`` is what signaling drives; ``live.peer.ClientPeer`` is the client
side used by tests and the Python client. Everything touching aiortc internals is in
``live.aiortc_seam``.
"""

import core  # noqa: F401 - first: sets up numpy's BLAS before numpy loads (core/__init__.py)

"""Live rooms: the WebRTC media plane on aiortc (forwarding, room mix, active speakers).

``live.media_room.MediaRoom`` is what signaling drives; ``live.peer.ClientPeer`` is the client
side used by tests and the Python client. Everything touching aiortc internals is in
``live.aiortc_seam``.
"""

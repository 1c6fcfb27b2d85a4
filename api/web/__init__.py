"""The web client: plain HTML/CSS/JS pages served by the API (no build step).

``/`` is the lobby (sign in or register, live and scheduled rooms, create a room) and
``/rooms/{room_id}`` the room page (stage and audience, hands, invitations, moderator controls,
who is speaking, the REC indicator). Both talk to the JSON API under ``/v1`` and to the live
signaling WebSocket exactly as any other client would (docs/api.md, docs/protocol.md).
"""

from api.web.routes import STATIC_DIR, router

__all__ = ["STATIC_DIR", "router"]

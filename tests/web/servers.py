"""The app the browser tests talk to: the API, the web pages and the live signaling endpoint
in one ASGI app, as ``roomcast up`` serves them on one machine."""

from __future__ import annotations

from fastapi import FastAPI

from api.app import create_app
from core.settings import Settings


def web_app(settings: Settings) -> FastAPI:
    """API + web client + live node (the signaling WebSocket) for ``settings``."""
    from live.node import LiveNode
    from live.process import prepare_live_process
    from live.signaling import create_live_router

    prepare_live_process()  # as roomcast up's live node does (live/process.py)
    app = create_app(settings)
    app.include_router(create_live_router(LiveNode(settings)))
    return app

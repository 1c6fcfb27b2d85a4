"""The API's app factory. Dependencies are built in the lifespan and kept in ``app.state``."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from fastapi import FastAPI

from api.body_limit import BodyLimitMiddleware
from api.errors import install_error_handlers
from api.ratelimit import RateLimiter
from api.routes import (
    auth,
    clips,
    feeds,
    health,
    media_tokens,
    replays,
    rooms,
    shows,
    webhooks,
)
from api.web import router as web_router
from core.adapters.db.engine import check_database, make_engine, make_session_factory
from core.adapters.redis_process import ping_redis
from core.ports import JobQueue
from core.settings import Settings
from core.storage import Storage

#: Timeouts inside the readiness probes (each also runs under health.CHECK_DEADLINE_SECONDS).
REDIS_PING_TIMEOUT_SECONDS: Final = 1.0
WORKER_PING_TIMEOUT_SECONDS: Final = 3.0


@dataclass
class ApiDeps:
    """What the routes use. Tests pass their own; otherwise the lifespan builds them."""

    engine: sa.Engine
    storage: Storage
    queue: JobQueue
    redis_url: str
    owned: bool = field(default=False)
    """Built by the app, so the app disposes of them on shutdown."""

    def readiness_checks(self) -> dict[str, health.Check]:
        return {
            "database": lambda: check_database(self.engine),
            "redis": lambda: ping_redis(self.redis_url, timeout=REDIS_PING_TIMEOUT_SECONDS),
            "storage": self.storage.check,
            "worker": lambda: self.queue.ping_worker(WORKER_PING_TIMEOUT_SECONDS),
        }

    def close(self) -> None:
        self.engine.dispose()
        close = getattr(self.queue, "close", None)
        if callable(close):
            close()


def build_deps(settings: Settings) -> ApiDeps:
    """The production dependencies for ``settings``; contacts nothing yet."""
    from core.adapters.celery_queue import CeleryJobQueue
    from core.adapters.storage_factory import build_storage

    return ApiDeps(
        engine=make_engine(settings),
        storage=build_storage(settings),
        queue=CeleryJobQueue(settings),
        redis_url=settings.redis_url,
        owned=True,
    )


def create_app(settings: Settings, *, deps: ApiDeps | None = None) -> FastAPI:
    """The FastAPI app for ``settings``; ``deps`` overrides the production dependencies."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = deps if deps is not None else build_deps(settings)
        app.state.settings = settings
        app.state.deps = built
        app.state.engine = built.engine
        app.state.session_factory = make_session_factory(built.engine)
        app.state.storage = built.storage
        app.state.queue = built.queue
        app.state.readiness_checks = built.readiness_checks()
        try:
            yield
        finally:
            if built.owned:
                built.close()

    app = FastAPI(
        title="Roomcast",
        version="0.1.0",
        lifespan=lifespan,
        responses={503: {"description": "A dependency is unavailable; retry later."}},
    )
    install_error_handlers(app)
    # Artwork uploads stream under their own, larger cap (api.routes.shows).
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.api.max_body_bytes,
        exempt=[("PUT", r"/v1/shows/[^/]+/artwork")],
    )
    # Per-process, in-memory request limits (api.ratelimit); tests may swap in a fake clock.
    app.state.rate_limiter = RateLimiter()
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(rooms.router)
    app.include_router(replays.router)
    app.include_router(media_tokens.router)
    app.include_router(shows.router)
    app.include_router(feeds.router)
    app.include_router(webhooks.router)
    app.include_router(clips.router)
    app.include_router(web_router)
    _give_each_operation_its_own_id(app)
    return app


def _give_each_operation_its_own_id(app: FastAPI) -> None:
    """Routes that answer GET and HEAD (file delivery, feeds) share one generated operationId,
    which makes the OpenAPI document invalid; suffix each such operation with its method."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        with warnings.catch_warnings():  # the duplicates FastAPI warns about are fixed below
            warnings.filterwarnings("ignore", message="Duplicate Operation ID")
            schema = generate()
        seen: dict[str, int] = {}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    seen[operation["operationId"]] = seen.get(operation["operationId"], 0) + 1
        for item in schema.get("paths", {}).values():
            for method, operation in item.items():
                if (
                    isinstance(operation, dict)
                    and seen.get(str(operation.get("operationId")), 0) > 1
                ):
                    operation["operationId"] = f"{operation['operationId']}_{method}"
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

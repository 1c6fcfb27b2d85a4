"""Helpers shared by the fault tests: a worker environment with a short visibility timeout,
polling, and a storage listing to compare before and after a fault."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from core.settings import Settings
from core.storage import Storage

T = TypeVar("T")

#: Redis gives an unacknowledged message to another worker after this many seconds.
VISIBILITY_SECONDS = 4
#: How long the default outage lasts; ROOMCAST_FAULT_OUTAGE_SECONDS=60 runs the long variant.
OUTAGE_SECONDS = float(os.environ.get("ROOMCAST_FAULT_OUTAGE_SECONDS", "12"))


def with_redis(settings: Settings, redis_url: str) -> Settings:
    """``settings`` pointed at the test's Redis."""
    return settings.model_copy(
        update={"redis": settings.redis.model_copy(update={"url": redis_url})}
    )


def fast_redelivery_env(**extra: str) -> dict[str, str]:
    """Worker environment: short visibility timeout so a killed worker's task comes back soon."""
    return {"ROOMCAST_REDIS__VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY_SECONDS), **extra}


def wait_until(check: Callable[[], T | None], within: float, what: str, step: float = 0.1) -> T:
    """Poll ``check`` until it answers something truthy; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {within:.0f} s for {what}")
        time.sleep(step)


def stored_keys(storage: Storage, prefix: str = "") -> set[str]:
    """Every key in ``storage`` under ``prefix``."""
    return {info.key for info in storage.list(prefix)}


def files_under(root: Path) -> set[str]:
    """Every file below ``root`` (relative paths): catches partial uploads ``list`` hides."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}

"""``/healthz`` (the process answers) and ``/readyz`` (its dependencies answer).

Readiness runs every check at once, each in a worker thread under a deadline, so a hung
dependency costs one timeout and never blocks the event loop. The verdict is a pure function of
the check results.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.errors import RoomcastError

router = APIRouter(tags=["health"])

#: Upper bound on one check, whatever the check's own timeouts.
CHECK_DEADLINE_SECONDS: Final = 4.0
#: The checks' names, in the order they are reported.
DEPENDENCIES: Final = ("database", "redis", "storage", "worker")

Check = Callable[[], None]
"""A blocking probe: returns when the dependency answers, raises when it does not."""


@dataclass(frozen=True)
class CheckResult:
    """One dependency's answer."""

    name: str
    ok: bool
    detail: str
    ms: float


def readiness(results: Sequence[CheckResult]) -> tuple[int, dict[str, Any]]:
    """The status code and body for ``results``: 200 if all are ok, else 503 naming failures."""
    failing = [result.name for result in results if not result.ok]
    body: dict[str, Any] = {
        "status": "unavailable" if failing else "ready",
        "checks": {
            result.name: {"ok": result.ok, "detail": result.detail, "ms": round(result.ms, 2)}
            for result in results
        },
        "failing": failing,
    }
    return (503 if failing else 200), body


async def run_check(
    name: str, check: Check, deadline: float = CHECK_DEADLINE_SECONDS
) -> CheckResult:
    """Run ``check`` in a thread; any exception or a missed deadline is a failed result."""
    start = time.perf_counter()
    try:
        await asyncio.wait_for(asyncio.to_thread(check), timeout=deadline)
    except TimeoutError:
        ok, detail = False, f"no answer within {deadline:g} s"
    except RoomcastError as exc:
        ok, detail = False, exc.message
    except Exception as exc:  # noqa: BLE001 - a probe must report, not crash the endpoint
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    else:
        ok, detail = True, "ok"
    return CheckResult(name, ok, detail, (time.perf_counter() - start) * 1000)


async def run_checks(checks: Mapping[str, Check]) -> list[CheckResult]:
    """All checks concurrently, reported in ``checks``' order."""
    return list(await asyncio.gather(*(run_check(name, check) for name, check in checks.items())))


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process serves requests. Touches no dependency."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: database, redis, storage and worker each answer within a short timeout."""
    checks: Mapping[str, Check] = request.app.state.readiness_checks
    status, body = readiness(await run_checks(checks))
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(body, status_code=status, headers=headers)

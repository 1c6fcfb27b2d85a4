"""Per-user and per-address request limits as FastAPI dependencies (429 with ``Retry-After``).

The decision is :func:`core.ratelimit.check` (pure, sliding window); this module keeps the
recent attempt times it needs **in memory, per API process**: with N API processes a caller may
get up to N times the configured limits, and a restart forgets them. That is enough to blunt
password guessing and room spam from one client; a Redis-backed store can replace
:class:`RateLimiter` later behind the same ``hit`` method. Clips are limited elsewhere, from
their stored creation times (``api.routes.clips``), so that limit is exact across processes.

Limited, with their codes (docs/api.md):

- ``POST /v1/rooms`` — per user: ``room_rate_limited``.
- ``POST /v1/auth/token`` and ``POST /v1/auth/register`` — per client address, and sign-in
  also per account name: ``auth_rate_limited``.

Every attempt counts, successful or not (a guesser's right answer is an attempt too); a
refused attempt does not, so waiting ``Retry-After`` seconds always lets the next one in.
The client address is the ASGI peer; behind a reverse proxy run uvicorn with
``--proxy-headers --forwarded-allow-ips`` so that it is the real client's.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import CurrentUserDep, SettingsDep
from core.errors import RateLimited
from core.ratelimit import RateDecision, RateLimit, check

#: Distinct keys kept before stale ones are swept (bounds memory under address churn).
DEFAULT_MAX_KEYS: Final = 100_000


class RateLimiter:
    """Recent attempt times per key, in memory; thread-safe (sync routes run in a pool).

    ``clock`` returns seconds on a monotonic scale; tests pass a fake one.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._events: dict[str, deque[float]] = {}
        self._windows: dict[str, float] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, rule: RateLimit) -> RateDecision:
        """Record one attempt under ``key`` if ``rule`` allows it now; say whether it did."""
        with self._lock:
            now = self._clock()
            events = self._events.get(key)
            if events is None:
                if len(self._events) >= self._max_keys:
                    self._sweep(now)
                events = self._events[key] = deque()
            self._windows[key] = rule.window_seconds
            cutoff = now - rule.window_seconds
            while events and events[0] <= cutoff:
                events.popleft()
            decision = check(rule, events, now)
            if decision.allowed:
                events.append(now)
            return decision

    def __len__(self) -> int:
        """Keys currently tracked."""
        return len(self._events)

    def _sweep(self, now: float) -> None:
        # Keys whose every attempt has left its window carry no information: drop them.
        stale = [
            key
            for key, events in self._events.items()
            if not events or events[-1] <= now - self._windows.get(key, 0.0)
        ]
        for key in stale:
            del self._events[key]
            self._windows.pop(key, None)


def get_rate_limiter(request: Request) -> RateLimiter:
    """The app's limiter (``app.state.rate_limiter``, made by :func:`api.app.create_app`)."""
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]


def enforce(limiter: RateLimiter, key: str, rule: RateLimit, *, what: str, code: str) -> None:
    """Count one attempt under ``key``; raise :class:`RateLimited` (429) when over ``rule``."""
    decision = limiter.hit(key, rule)
    if not decision.allowed:
        wait = decision.retry_after_header
        raise RateLimited(
            f"too many {what}: at most {rule.limit} per {rule.window_seconds:g} s;"
            f" try again in {wait} s",
            retry_after=int(wait),
            code=code,
        )


def client_address(request: Request) -> str:
    """The peer address uvicorn reports (``unknown`` when the server gives none)."""
    return request.client.host if request.client is not None else "unknown"


def limit_room_creation(
    user: CurrentUserDep, settings: SettingsDep, limiter: RateLimiterDep
) -> None:
    """``POST /v1/rooms``: at most ``limits.room_creations`` per user per window."""
    rule = RateLimit(settings.limits.room_creations, settings.limits.room_window_seconds)
    enforce(limiter, f"room:user:{user.id}", rule, what="rooms created", code="room_rate_limited")


def _auth_rule(settings: SettingsDep) -> RateLimit:
    return RateLimit(settings.limits.auth_attempts, settings.limits.auth_window_seconds)


def limit_registration(request: Request, settings: SettingsDep, limiter: RateLimiterDep) -> None:
    """``POST /v1/auth/register``: per client address."""
    enforce(
        limiter,
        f"auth:ip:{client_address(request)}",
        _auth_rule(settings),
        what="sign-in or registration attempts from this address",
        code="auth_rate_limited",
    )


def limit_sign_in(
    request: Request,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> None:
    """``POST /v1/auth/token``: per client address and per account name (the form's
    ``username``, case-folded), so neither one address nor many can hammer one account."""
    limit_registration(request, settings, limiter)
    account = form.username.strip().casefold()[:320]
    enforce(
        limiter,
        f"auth:account:{account}",
        _auth_rule(settings),
        what="sign-in attempts for this account",
        code="auth_rate_limited",
    )

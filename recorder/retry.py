"""Retrying one storage action: exponential backoff with full jitter, and when to give up.

The uploader's thread (:class:`~recorder.uploader.Uploader`) stores two kinds of queue entry —
spool files and progress documents — and retries both the same way, which
:func:`retry_storage` is:

- :class:`~core.errors.StorageUnavailable` is retried for as long as the caller runs, waiting
  ``backoff_delay(policy, n, random)`` with ``n`` = 0, 1, 2, ... counted over unavailable
  failures only (the outage may last: the room keeps recording to the spool meanwhile);
- a failure of one of the caller's *permanent* types (a checksum mismatch, a refused key) is
  counted; after ``policy.permanent_attempts`` of them the action is given up (:class:`GaveUp`),
  otherwise the loop waits ``backoff_delay(policy, k, random)`` where ``k`` is the count so far
  (so 1 before the second attempt);
- any other exception propagates;
- before every attempt the loop stops (returns None) once ``stopped()`` or ``abandon()`` is
  true — the uploader is closing, or the entry no longer matters (a newer progress document).

Waiting goes through the caller's ``wait`` (``threading.Event.wait`` in the uploader, so
closing interrupts a backoff); the counters, health and logs belong to the caller's hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.errors import StorageUnavailable

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, initial * factor**n))``."""

    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    factor: float = 2.0
    #: Attempts for failures that are not "storage unavailable" (mismatch, refused key).
    permanent_attempts: int = 3


#: The retry policy used when a caller names none.
DEFAULT_RETRY = RetryPolicy()


def backoff_delay(policy: RetryPolicy, attempt: int, unit_random: float) -> float:
    """Seconds to wait before retry ``attempt`` (0 = the first retry); ``unit_random`` in [0, 1).

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads the retries of
    many nodes that lost storage at the same moment instead of having them return in lockstep.
    """
    ceiling = min(policy.max_seconds, policy.initial_seconds * policy.factor ** min(attempt, 64))
    return max(0.0, min(1.0, unit_random)) * ceiling


@dataclass(frozen=True, slots=True)
class Succeeded(Generic[_T]):
    """The action returned ``value``."""

    value: _T


@dataclass(frozen=True, slots=True)
class GaveUp:
    """The action failed ``policy.permanent_attempts`` times with a permanent error."""

    error: Exception  #: the last one


def _never() -> bool:
    return False


def _ignore(_exc: StorageUnavailable) -> None:
    return None


def _ignore_failure(_exc: Exception, _attempt: int) -> None:
    return None


def retry_storage(
    action: Callable[[], _T],
    *,
    policy: RetryPolicy,
    permanent: tuple[type[Exception], ...],
    unit_random: Callable[[], float],
    wait: Callable[[float], object],
    stopped: Callable[[], bool],
    abandon: Callable[[], bool] = _never,
    on_unavailable: Callable[[StorageUnavailable], None] = _ignore,
    on_failure: Callable[[Exception, int], None] = _ignore_failure,
) -> Succeeded[_T] | GaveUp | None:
    """Run ``action`` until it succeeds, is given up, or the caller stops (module doc). BLOCKS.

    ``on_unavailable(exc)`` runs after each :class:`StorageUnavailable`, before its backoff;
    ``on_failure(exc, n)`` after the ``n``-th permanent failure (1-based), before the give-up
    check. Returns None when ``stopped()`` or ``abandon()`` ended the loop before an attempt.
    """
    unavailable_attempts = 0
    other_attempts = 0
    while not stopped():
        if abandon():
            return None
        try:
            value = action()
        except StorageUnavailable as exc:
            on_unavailable(exc)
            delay = backoff_delay(policy, unavailable_attempts, unit_random())
            unavailable_attempts += 1
            wait(delay)
            continue
        except permanent as exc:
            other_attempts += 1
            on_failure(exc, other_attempts)
            if other_attempts >= policy.permanent_attempts:
                return GaveUp(exc)
            wait(backoff_delay(policy, other_attempts, unit_random()))
            continue
        return Succeeded(value)
    return None

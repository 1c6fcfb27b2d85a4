"""Ports: the ``Protocol`` s that core and the apps program against.

Adapters live in ``core/adapters/``; tests use the shipped fakes or real servers. Storage has
its own port module (``core/storage.py``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class JobQueue(Protocol):
    """Sends background jobs to the workers by task name (see ``core.jobs``).

    Methods block (network I/O): callers on an event loop run them in a thread.
    """

    def enqueue(self, task_name: str, *args: object, queue: str = "default") -> str:
        """Send ``task_name(*args)`` to ``queue``; return the job id.

        Arguments must be JSON-serializable (IDs, not objects). Raises
        ``core.errors.DependencyUnavailable`` when the broker cannot be reached and
        ``core.errors.InvalidInput`` for an unknown queue.
        """
        ...

    def ping_worker(self, timeout: float) -> None:
        """Round-trip the ``roomcast.ping`` task through a worker within ``timeout`` seconds.

        Raises ``core.errors.DependencyUnavailable("worker", ...)`` when no worker answers.
        """
        ...

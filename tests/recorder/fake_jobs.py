"""A JobQueue of ours for recorder tests: records what was enqueued (the real one is Celery)."""

from __future__ import annotations

from core import jobs
from core.errors import DependencyUnavailable


class RecordingJobQueue:
    """:class:`core.ports.JobQueue` that keeps ``(task_name, args, queue)`` in ``sent``."""

    def __init__(self, *, down: bool = False) -> None:
        self.sent: list[tuple[str, tuple[object, ...], str]] = []
        self.down = down

    def enqueue(self, task_name: str, *args: object, queue: str = "default") -> str:
        if self.down:
            raise DependencyUnavailable("redis", "broker unreachable (test)")
        jobs.check_queue(queue)
        self.sent.append((task_name, args, queue))
        return f"job-{len(self.sent)}"

    def ping_worker(self, timeout: float) -> None:
        raise DependencyUnavailable("worker", "no worker in recorder tests")

"""``JobQueue`` over Celery: sends tasks by name, so senders never import ``workers``."""

from __future__ import annotations

from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import OperationalError

from core import jobs
from core.adapters.celery_config import make_celery
from core.errors import DependencyUnavailable, InvalidInput
from core.settings import Settings


class CeleryJobQueue:
    """The production :class:`core.ports.JobQueue`. Blocking: call from threads on a loop."""

    def __init__(self, settings: Settings) -> None:
        self._app = make_celery(settings, "roomcast-sender")

    def enqueue(self, task_name: str, *args: object, queue: str = jobs.DEFAULT_QUEUE) -> str:
        """Send ``task_name(*args)`` to ``queue`` and return its id."""
        try:
            checked = jobs.check_queue(queue)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="unknown_queue") from exc
        try:
            result = self._app.send_task(task_name, args=list(args), queue=checked)
        except OperationalError as exc:
            raise DependencyUnavailable("redis", f"cannot enqueue {task_name}: {exc}") from exc
        return str(result.id)

    def ping_worker(self, timeout: float) -> None:
        """Round-trip ``roomcast.ping`` through a worker, or raise ``DependencyUnavailable``."""
        try:
            # expires: a ping nobody picked up in time is dropped, so probes never pile up.
            result = self._app.send_task(jobs.PING, queue=jobs.DEFAULT_QUEUE, expires=timeout)
        except OperationalError as exc:
            raise DependencyUnavailable("worker", f"cannot reach the broker: {exc}") from exc
        try:
            answer = result.get(timeout=timeout, interval=0.05)
        except CeleryTimeout as exc:
            raise DependencyUnavailable(
                "worker", f"no worker answered {jobs.PING} within {timeout:g} s"
            ) from exc
        except Exception as exc:  # the backend's connection errors vary by transport
            raise DependencyUnavailable("worker", f"{type(exc).__name__}: {exc}") from exc
        finally:
            result.forget()
        if answer != jobs.PONG:
            raise DependencyUnavailable("worker", f"unexpected ping answer {answer!r}")

    def close(self) -> None:
        """Release the broker and backend connections."""
        self._app.close()

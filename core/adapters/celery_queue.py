"""``JobQueue`` over Celery: sends tasks by name, so senders never import ``workers``.

Enqueued jobs keep no Celery result (``ignore_result``): tasks record their outcome in the
database, and a sender that never subscribes to results never depends on Celery's result
consumer, which gives up for good after a Redis outage ("the Celery application must be
restarted"). The worker ping does need its result, so each ping uses a short-lived app of its
own that is thrown away afterwards, whatever happened to Redis meanwhile.
"""

from __future__ import annotations

import logging

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from kombu.exceptions import OperationalError

from core import jobs
from core.adapters.celery_config import make_celery
from core.errors import DependencyUnavailable, InvalidInput
from core.settings import Settings

log = logging.getLogger(__name__)


class CeleryJobQueue:
    """The production :class:`core.ports.JobQueue`. Blocking: call from threads on a loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app = make_celery(settings, "roomcast-sender")

    def enqueue(self, task_name: str, *args: object, queue: str = jobs.DEFAULT_QUEUE) -> str:
        """Send ``task_name(*args)`` to ``queue`` and return its id."""
        try:
            checked = jobs.check_queue(queue)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="unknown_queue") from exc
        try:
            result = self._app.send_task(
                task_name, args=list(args), queue=checked, ignore_result=True
            )
        except OperationalError as exc:
            raise DependencyUnavailable(
                "redis", f"cannot enqueue {task_name}: {_line(exc)}"
            ) from exc
        return str(result.id)

    def ping_worker(self, timeout: float, *, queue: str = jobs.DEFAULT_QUEUE) -> None:
        """Round-trip ``roomcast.ping`` through a worker consuming ``queue`` within ``timeout`` s.

        Raises ``DependencyUnavailable("worker", ...)``.
        """
        app = make_celery(self._settings, "roomcast-ping")
        try:
            _ping(app, timeout, jobs.check_queue(queue))
        finally:
            app.close()

    def close(self) -> None:
        """Release the broker connections."""
        self._app.close()


def _ping(app: Celery, timeout: float, queue: str) -> None:
    try:
        # expires: a ping nobody picked up in time is dropped, so probes never pile up.
        result = app.send_task(jobs.PING, queue=queue, expires=timeout)
    except (OperationalError, RuntimeError) as exc:
        raise DependencyUnavailable("worker", f"cannot reach the broker: {_line(exc)}") from exc
    try:
        answer = result.get(timeout=timeout, interval=0.05)
    except CeleryTimeout as exc:
        raise DependencyUnavailable(
            "worker", f"no worker answered {jobs.PING} on queue {queue!r} within {timeout:g} s"
        ) from exc
    except Exception as exc:  # the result backend's connection errors vary by transport
        raise DependencyUnavailable("worker", _line(exc)) from exc
    try:
        result.forget()
    except Exception:  # only tidiness: the result expires anyway
        log.debug("could not forget ping result %s", result.id, exc_info=True)
    if answer != jobs.PONG:
        raise DependencyUnavailable("worker", f"unexpected ping answer {answer!r}")


def _line(exc: BaseException) -> str:
    """One line naming the error; Celery's messages start with a newline and span several."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""The one storage retry loop: golden wait sequences fed through a fake ``wait``, and the
uploader's files and progress documents going through it (counters, give-up, logs)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from core.adapters.storage_local import LocalStorage
from core.errors import StorageError, StorageUnavailable, UploadRejected
from core.recording.progress import RecordingProgress, progress_key
from core.storage import ObjectInfo
from recorder.retry import GaveUp, RetryPolicy, Succeeded, backoff_delay, retry_storage
from recorder.uploader import Uploader, UploadItem
from tests.recorder.test_progress_uploader import WHEN

# unit_random 0.5 of a ceiling that doubles from 1 s up to 8 s: waits of 0.5, 1, 2, 4, 4, ...
POLICY = RetryPolicy(initial_seconds=1.0, max_seconds=8.0, permanent_attempts=3)
FAST = RetryPolicy(initial_seconds=0.01, max_seconds=0.05, permanent_attempts=2)


def scripted(outcomes: list[Exception | str]) -> Callable[[], str]:
    """An action that raises or returns ``outcomes`` in turn."""
    remaining = list(outcomes)

    def action() -> str:
        outcome = remaining.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return action


class Run:
    """Drives :func:`retry_storage` with a recorded, instant ``wait`` and recorded hooks."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.unavailable: list[str] = []
        self.failures: list[tuple[str, int]] = []

    def __call__(
        self,
        action: Callable[[], str],
        *,
        stopped: Callable[[], bool] = lambda: False,
        abandon: Callable[[], bool] = lambda: False,
    ) -> Succeeded[str] | GaveUp | None:
        return retry_storage(
            action,
            policy=POLICY,
            permanent=(UploadRejected, OSError),
            unit_random=lambda: 0.5,
            wait=self.waits.append,
            stopped=stopped,
            abandon=abandon,
            on_unavailable=lambda exc: self.unavailable.append(exc.message),
            on_failure=lambda exc, n: self.failures.append((str(exc), n)),
        )


def test_an_outage_backs_off_exponentially_until_it_passes() -> None:
    run = Run()
    down = [StorageUnavailable("down")] * 5
    assert run(scripted([*down, "stored"])) == Succeeded("stored")
    assert run.waits == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert run.unavailable == ["storage: down"] * 5 and run.failures == []


def test_permanent_failures_are_counted_then_given_up_on() -> None:
    run = Run()
    errors: list[Exception | str] = [
        UploadRejected("a"),
        OSError("b"),
        UploadRejected("c"),
        "never reached",
    ]
    outcome = run(scripted(errors))
    assert isinstance(outcome, GaveUp) and str(outcome.error) == "c"
    # The count so far picks the backoff: 1 before the second attempt.
    assert run.waits == [backoff_delay(POLICY, 1, 0.5), backoff_delay(POLICY, 2, 0.5)]
    assert run.waits == [1.0, 2.0]
    assert run.failures == [("a", 1), ("b", 2), ("c", 3)]


def test_outages_and_permanent_failures_keep_separate_counts() -> None:
    run = Run()
    outcomes: list[Exception | str] = [
        StorageUnavailable("down"),
        UploadRejected("mismatch"),
        StorageUnavailable("down"),
        UploadRejected("mismatch"),
        StorageUnavailable("down"),
        "stored",
    ]
    assert run(scripted(outcomes)) == Succeeded("stored")
    assert run.waits == [0.5, 1.0, 1.0, 2.0, 2.0]  # outage n=0, other k=1, n=1, k=2, n=2
    assert [n for _, n in run.failures] == [1, 2]  # two of three: not given up


def test_other_errors_propagate_at_once() -> None:
    run = Run()
    with pytest.raises(ValueError, match="bug"):
        run(scripted([ValueError("bug")]))
    assert run.waits == [] and run.failures == []


def test_stopping_or_abandoning_ends_the_loop_before_an_attempt() -> None:
    calls: list[str] = []

    def action() -> str:
        calls.append("attempt")
        raise StorageUnavailable("down")

    run = Run()
    assert run(action, stopped=lambda: len(calls) >= 2) is None
    assert calls == ["attempt"] * 2 and run.waits == [0.5, 1.0]
    calls.clear()
    assert Run()(action, abandon=lambda: True) is None
    assert calls == []


class RefusingStorage(LocalStorage):
    """Refuses every byte put with a permanent storage error; counts them."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.byte_puts = 0

    def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> ObjectInfo:
        self.byte_puts += 1
        raise StorageError("refused for the test")


def test_a_refused_progress_document_is_logged_retried_and_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = RefusingStorage(tmp_path / "store")
    uploader = Uploader(storage, policy=FAST)
    assert uploader.on_progress(RecordingProgress("rec1", 48_000, WHEN))
    with caplog.at_level(logging.WARNING, logger="recorder.uploader"):
        uploader.start()
        assert uploader.close(timeout=10)
    health = uploader.health()
    assert (storage.byte_puts, health.retries, health.progress_written) == (2, 2, 0)
    assert not health.degraded and health.progress_stopped is None  # the next one replaces it
    key = progress_key("rec1")
    assert [r.getMessage() for r in caplog.records if r.name == "recorder.uploader"] == [
        f"{key}: not written (attempt 1): refused for the test",
        f"{key}: not written (attempt 2): refused for the test",
    ]


def test_a_file_given_up_on_counts_every_attempt_and_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    damaged = tmp_path / "seg.opus"
    damaged.write_bytes(b"not what the sidecar says")
    uploader = Uploader(LocalStorage(tmp_path / "store"), policy=FAST)
    with caplog.at_level(logging.WARNING, logger="recorder.uploader"):
        uploader.start()
        assert uploader.submit(UploadItem(damaged, "recordings/rec1/seg.opus", 25, "0" * 64))
        assert uploader.close(timeout=10)
    health = uploader.health()
    assert (health.retries, health.uploaded, len(health.failed)) == (2, 0, 1)
    assert health.failed[0].startswith(f"{damaged}: ") and "damaged" in health.failed[0]
    assert health.progress_stopped == f"{damaged} failed"
    assert [r for r in caplog.records if r.name == "recorder.uploader"] == []

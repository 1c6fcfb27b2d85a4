"""live.recording.start_follower: a recording that opens gets its live render enqueued on the
live queue; off, nothing is sent; a broker that is down costs only the head start."""

from __future__ import annotations

from core import jobs
from live.recording import start_follower
from tests.recorder.fake_jobs import RecordingJobQueue


def test_a_new_recording_enqueues_its_follower_on_the_live_queue() -> None:
    queue = RecordingJobQueue()
    assert start_follower(queue, "rec-9", enabled=True) == "job-1"
    assert queue.sent == [(jobs.POSTPROD_FOLLOW, ("rec-9",), jobs.LIVE_QUEUE)]


def test_nothing_is_sent_when_live_render_is_off() -> None:
    queue = RecordingJobQueue()
    assert start_follower(queue, "rec-9", enabled=False) is None
    assert queue.sent == []


def test_a_broker_that_is_down_does_not_stop_the_recording() -> None:
    assert start_follower(RecordingJobQueue(down=True), "rec-9", enabled=True) is None

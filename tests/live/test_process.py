"""A live node's process set-up: done by every entry point that runs a node, by nothing else."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from core.settings import Settings
from live.mixer import RoomMixer
from live.process import GIL_SWITCH_INTERVAL, prepare_live_process

DEFAULT_INTERVAL = 0.005


@pytest.fixture(autouse=True)
def default_interval() -> Iterator[None]:
    """Each test starts from CPython's default switch interval; the process's is restored."""
    saved = sys.getswitchinterval()
    sys.setswitchinterval(DEFAULT_INTERVAL)
    yield
    sys.setswitchinterval(saved)


def test_prepare_lowers_the_switch_interval_once() -> None:
    prepare_live_process()
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL)
    prepare_live_process()
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL)


def test_prepare_never_raises_a_shorter_interval() -> None:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL / 5)
    prepare_live_process()
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL / 5)


def test_a_running_mixer_leaves_the_interpreter_alone() -> None:
    async def run() -> float:
        mixer = RoomMixer("r")
        mixer.attach_listener()
        mixer.start()
        await asyncio.sleep(0.05)
        during = sys.getswitchinterval()
        await mixer.close()
        return during

    assert asyncio.run(run()) == pytest.approx(DEFAULT_INTERVAL)


def _node_factory() -> Any:
    from live.node import app_from_env

    return app_from_env()


def _cluster_factory() -> Any:
    from live.cluster import app_from_env

    return app_from_env()


@pytest.mark.parametrize("factory", [_node_factory, _cluster_factory], ids=["node", "cluster"])
def test_uvicorn_factories_prepare_the_process(
    factory: Callable[[], Any],
    settings: Settings,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROOMCAST_VAR_DIR", str(settings.var_path))
    monkeypatch.setenv("ROOMCAST_REDIS__URL", redis_url)
    assert isinstance(factory(), FastAPI)
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL)


def test_roomcast_up_prepares_the_process_as_it_mounts_the_live_node(settings: Settings) -> None:
    from live.node import LiveNode, mount_live

    node = LiveNode(settings)
    assert sys.getswitchinterval() == pytest.approx(DEFAULT_INTERVAL)  # building: no change
    mount_live(FastAPI(), node)
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL)


@pytest.mark.parametrize("clustered", [False, True], ids=["standalone", "cluster"])
def test_roomcast_live_prepares_the_process_before_serving(
    clustered: bool,
    settings: Settings,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from roomcast.cli import app

    served: list[tuple[object, float]] = []

    def serve(application: object, **_: object) -> None:  # uvicorn's, not ours: never serves
        served.append((application, sys.getswitchinterval()))

    monkeypatch.setattr(uvicorn, "run", serve)
    monkeypatch.setenv("ROOMCAST_VAR_DIR", str(settings.var_path))
    if clustered:
        monkeypatch.setenv("ROOMCAST_REDIS__URL", redis_url)
    result = CliRunner().invoke(app, ["live"])
    assert result.exit_code == 0, result.output
    [(application, interval)] = served
    assert isinstance(application, FastAPI)
    assert interval == pytest.approx(GIL_SWITCH_INTERVAL)

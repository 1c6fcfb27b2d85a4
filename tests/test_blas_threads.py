"""Every entry point runs numpy's BLAS on one thread (core/__init__.py says why): each
package's ``__init__`` imports ``core`` first, so even a module imported on its own does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, glob, os, sys
import {module}
import numpy
libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs", "*openblas*"))
threads = None
for lib in libs:
    handle = ctypes.CDLL(lib)
    for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads"):
        if hasattr(handle, name):
            threads = getattr(handle, name)()
print(os.environ.get("OPENBLAS_NUM_THREADS"), threads)
"""


@pytest.mark.parametrize(
    "module",
    ["roomcast.cli", "workers.celery_entry", "workers.audio.render", "live.mixer", "bench.export"],
)
def test_entry_points_load_blas_single_threaded(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    )  # fmt: skip
    variable, threads = run.stdout.split()
    assert variable == "1"
    # numpy's OpenBLAS, asked directly when the wheel exposes it: 1 thread, not one per core.
    assert threads in ("1", "None")


def test_an_explicit_setting_wins() -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "3"}
    run = subprocess.run(
        [sys.executable, "-c", "import core, os; print(os.environ['OPENBLAS_NUM_THREADS'])"],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    )  # fmt: skip
    assert run.stdout.strip() == "3"

"""Benchmarks (make bench); each writes its section of docs/performance.md."""

import core  # noqa: F401 - first: sets up numpy's BLAS before numpy loads (core/__init__.py)

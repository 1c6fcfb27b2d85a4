"""The roomcast console script and the one-machine launcher."""

import core  # noqa: F401 - first: sets up numpy's BLAS before numpy loads (core/__init__.py)

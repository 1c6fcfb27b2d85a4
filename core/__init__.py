"""Roomcast's shared domain; every entry point imports this package before numpy.

OpenBLAS (numpy's and SciPy's BLAS) starts one thread per core for every matrix product and
lets them spin between calls. Our products are small (a handful of tracks by a block of
samples), so those threads only steal the cores the encoders and decoders need: rendering a
10 min room took 20.5 s of CPU with them and 14.5 s without, and 15 % longer on 2 cores.
Set here, before numpy loads its BLAS; every other package's ``__init__`` imports ``core``
first, so whatever module a process starts from (``roomcast``, a Celery worker, a benchmark)
runs single-threaded BLAS. An explicit ``OPENBLAS_NUM_THREADS`` still wins.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

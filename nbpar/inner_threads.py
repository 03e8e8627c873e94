"""Caps on the BLAS and OpenMP thread pools of a worker process (WorkerPool inner_threads=).

Libraries a worker loads from its start on read the environment; those it inherited already
loaded (a forked caller's NumPy and SciPy) are capped through threadpoolctl, when it is
installed. Finding those libraries (threadpoolctl reads /proc/self/maps and opens each one)
and importing threadpoolctl cost several milliseconds: paid by every worker, that was most of
a forked worker's start in a session with NumPy and SciPy loaded. So the process that forks
the workers (the caller under fork, the fork server under forkserver) finds them once, just
before it forks, and each worker only sets the thread counts of what it inherited.
"""

from __future__ import annotations

import os
import sys
from typing import Any

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
NATIVE = ("numpy", "scipy", "torch", "sklearn", "numexpr")  # modules that load BLAS/OpenMP

# (len(sys.modules) when found, threadpoolctl's ThreadpoolController): what this process has
# loaded, found before it forked; a fork inherits it
_found: tuple[int, Any] | None = None


def _native_loaded() -> bool:
    return any(name in sys.modules for name in NATIVE)


def find_libraries() -> None:
    """In a process about to fork workers: find the BLAS/OpenMP libraries it has loaded, for
    its workers to inherit; found again only once it has imported more modules."""
    global _found
    if not _native_loaded() or (_found is not None and _found[0] == len(sys.modules)):
        return
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # (nbpar[threads]) the environment alone caps what loads later
        return
    _found = (len(sys.modules), ThreadpoolController())


def cap(n: int | None) -> None:
    """In a worker at its start: at most `n` threads for BLAS and OpenMP from now on."""
    if n is None:
        return
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    if not _native_loaded():
        return
    if _found is not None:  # found by the process this worker was forked from
        _found[1].limit(limits=n)
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=n)

"""Caps on the BLAS and OpenMP thread pools of a worker process (WorkerPool inner_threads=).

Libraries a worker loads from its start on read the environment; those it inherited already
loaded (a forked caller's NumPy and SciPy) are capped through threadpoolctl, when it is
installed. Two costs shape how:

- Finding those libraries (threadpoolctl reads /proc/self/maps and opens each one) and
  importing threadpoolctl take several milliseconds. So the process that forks the workers
  (the caller under fork, the fork server under forkserver) finds them once, just before it
  forks, and each worker only sets the thread counts of what it inherited.
- Setting OpenBLAS's thread count in a freshly forked process starts its thread pool, whose
  threads then spin idle for about 0.1 s: 30-75 ms of CPU per library per worker, taken from
  the tasks on a small machine. So the fork server, which is nbpar's own, sets its own
  libraries to the count before it forks; its workers inherit the count and have nothing to
  set. A worker sets only what is above its cap (under fork, the caller's libraries: the
  caller's own settings are never touched).
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
        for library in _found[1].lib_controllers:
            if library.get_num_threads() > n:
                library.set_num_threads(n)
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=n)


def set_for_workers(n: int | None) -> None:
    """In the fork server, before it forks a worker capped at `n`: its own libraries run `n`
    threads, so the worker inherits the count instead of setting it (see above)."""
    if n is None:
        return
    find_libraries()
    if _found is None:
        return
    for library in _found[1].lib_controllers:
        if library.get_num_threads() != n:
            library.set_num_threads(n)

"""nbpar.Executor: a concurrent.futures.Executor over a kept-alive WorkerPool."""

from __future__ import annotations

import threading
from concurrent.futures import Executor as _Executor

from .pool import WorkerPool


class Executor(_Executor):
    """submit / map / shutdown(wait, cancel_futures), with every WorkerPool option."""

    def __init__(self, max_workers=None, **pool_options):
        pool_options.setdefault("keep_alive", True)
        self._pool = WorkerPool(max_workers, **pool_options)
        self._futures: set = set()
        self._lock = threading.Lock()
        self._shutdown = False

    @property
    def pool(self) -> WorkerPool:
        return self._pool

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future = self._pool.submit(fn, *args, **kwargs)
            self._futures.add(future)
        future.add_done_callback(self._discard)
        return future

    def _discard(self, future):
        with self._lock:
            self._futures.discard(future)

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._lock:
            self._shutdown = True
            pending = list(self._futures)
        if cancel_futures:
            for future in pending:
                future.cancel()
            self._pool.stop(now=False)
        self._pool.close()
        if wait:
            self._pool.join()

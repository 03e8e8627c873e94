"""Adapters: each peer used the way its documentation shows, behind one small interface.

A system is a name and a factory `make(n_workers)` returning an object with
`map(func, items)`, `apply(func, arg)` (one call, its result) and `close()`.
Warm workloads build it once and time calls; cold workloads time make + map + close.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing as mp


class NbparSystem:
    def __init__(self, n, start_method=None, progress_bar=False, **options):
        import nbpar
        self.pool = nbpar.WorkerPool(n, start_method=start_method, keep_alive=True, **options)
        self.progress_bar = progress_bar

    def map(self, func, items):
        return self.pool.map(func, items, progress_bar=self.progress_bar)

    def apply(self, func, arg):
        return self.pool.apply_async(func, (arg,)).get()

    def close(self):
        self.pool.close()
        self.pool.join()


class MpPoolSystem:
    def __init__(self, n, start_method="fork"):
        self.pool = mp.get_context(start_method).Pool(n)

    def map(self, func, items):
        return self.pool.map(func, items)

    def apply(self, func, arg):
        return self.pool.apply_async(func, (arg,)).get()

    def close(self):
        self.pool.close()
        self.pool.join()


class ProcessPoolSystem:
    def __init__(self, n, start_method="fork"):
        self.n = n
        self.pool = concurrent.futures.ProcessPoolExecutor(
            n, mp_context=mp.get_context(start_method))

    def map(self, func, items):
        items = list(items)  # chunksize as its docs advise for many small tasks
        return list(self.pool.map(func, items, chunksize=max(1, len(items) // (4 * self.n))))

    def apply(self, func, arg):
        return self.pool.submit(func, arg).result()

    def close(self):
        self.pool.shutdown()


class JoblibSystem:
    def __init__(self, n):
        import joblib
        self.joblib = joblib
        self.parallel = joblib.Parallel(n_jobs=n)  # loky, batch_size="auto"
        self.parallel.__enter__()  # keep the workers between calls

    def map(self, func, items):
        delayed = self.joblib.delayed(func)
        return self.parallel(delayed(x) for x in items)

    def apply(self, func, arg):
        return self.parallel([self.joblib.delayed(func)(arg)])[0]

    def close(self):
        self.parallel.__exit__(None, None, None)


class MpireSystem:
    def __init__(self, n, start_method="fork", progress_bar=False):
        import mpire
        self.pool = mpire.WorkerPool(n, start_method=start_method, keep_alive=True)
        self.progress_bar = progress_bar

    def map(self, func, items):
        return self.pool.map(func, items, progress_bar=self.progress_bar)

    def apply(self, func, arg):
        return self.pool.apply_async(func, (arg,)).get()

    def close(self):
        self.pool.terminate()


class TqdmProcessMapSystem:
    """tqdm.contrib.concurrent.process_map: a fresh ProcessPoolExecutor per call."""

    def __init__(self, n):
        self.n = n

    def map(self, func, items):
        from tqdm.contrib.concurrent import process_map
        items = list(items)
        return process_map(func, items, max_workers=self.n, disable=True,
                           chunksize=max(1, len(items) // (4 * self.n)))

    def apply(self, func, arg):
        return self.map(func, [arg])[0]

    def close(self):
        pass


SYSTEMS = {
    "nbpar": lambda n: NbparSystem(n),
    "nbpar-fork": lambda n: NbparSystem(n, "fork"),
    "nbpar-spawn": lambda n: NbparSystem(n, "spawn"),
    "nbpar+progress": lambda n: NbparSystem(n, progress_bar=True),
    "mp.Pool-fork": lambda n: MpPoolSystem(n, "fork"),
    "mp.Pool-forkserver": lambda n: MpPoolSystem(n, "forkserver"),
    "ProcessPoolExecutor": lambda n: ProcessPoolSystem(n, "fork"),
    "joblib-loky": lambda n: JoblibSystem(n),
    "mpire": lambda n: MpireSystem(n, "fork"),
    "mpire+progress": lambda n: MpireSystem(n, "fork", progress_bar=True),
    "tqdm.process_map": lambda n: TqdmProcessMapSystem(n),
}

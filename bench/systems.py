"""Adapters: each peer used the way its documentation shows, behind one small interface.

A system is a name and a factory `make(n_workers)` returning an object with
`map(func, items)` (nbpar, mp.Pool, ProcessPoolExecutor and MPIRE also take `chunk_size`:
items per message, None for the system's own choice), `apply(func, arg)` (one call, its
result) and `close()`; those that offer many calls in flight at once also have
`many(func, items)` (every call handed over before the first result is asked for).
Warm workloads build it once and time calls; cold workloads time make + map + close.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing as mp
import os


class _PoolWithProgressBar:
    """nbpar's and mpire's pools, used alike: map with or without a progress bar, apply_async."""

    def __init__(self, pool, progress_bar):
        self.pool = pool
        self.progress_bar = progress_bar

    def map(self, func, items, chunk_size=None):
        return self.pool.map(func, items, progress_bar=self.progress_bar, chunk_size=chunk_size)

    def apply(self, func, arg):
        return self.pool.apply_async(func, (arg,)).get()

    def many(self, func, items):
        calls = [self.pool.apply_async(func, (x,)) for x in items]
        return [c.get() for c in calls]


class NbparSystem(_PoolWithProgressBar):
    def __init__(self, n, start_method=None, progress_bar=False, **options):
        if options.get("backend") == "dask":
            n, options["client"] = None, dask_client(n)  # n_jobs: the cluster's threads
        import nbpar
        super().__init__(
            nbpar.WorkerPool(n, start_method=start_method, keep_alive=True, **options),
            progress_bar)

    def close(self):
        self.pool.close()
        self.pool.join()


class _ExecutorCalls:
    """Single calls and the end of a concurrent.futures executor (self.pool)."""

    def apply(self, func, arg):
        return self.pool.submit(func, arg).result()

    def many(self, func, items):
        futures = [self.pool.submit(func, x) for x in items]
        return [f.result() for f in futures]

    def close(self):
        self.pool.shutdown()


class NbparExecutorSystem(_ExecutorCalls):
    """nbpar.Executor used as code written for ProcessPoolExecutor uses it."""

    def __init__(self, n):
        import nbpar
        self.pool = nbpar.Executor(n)

    def map(self, func, items):
        return list(self.pool.map(func, items))  # the default chunksize, as most code does


class MpPoolSystem:
    def __init__(self, n, start_method="fork"):
        self.pool = mp.get_context(start_method).Pool(n)

    def map(self, func, items, chunk_size=None):
        return self.pool.map(func, items, chunksize=chunk_size)

    def apply(self, func, arg):
        return self.pool.apply_async(func, (arg,)).get()

    def many(self, func, items):
        calls = [self.pool.apply_async(func, (x,)) for x in items]
        return [c.get() for c in calls]

    def close(self):
        self.pool.close()
        self.pool.join()


class ProcessPoolSystem(_ExecutorCalls):
    def __init__(self, n, start_method="fork"):
        self.n = n
        self.pool = concurrent.futures.ProcessPoolExecutor(
            n, mp_context=mp.get_context(start_method))

    def map(self, func, items, chunk_size=None):
        items = list(items)  # chunksize as its docs advise for many small tasks
        return list(self.pool.map(func, items, chunksize=chunk_size or max(
            1, len(items) // (4 * self.n))))


class ProcessPoolDefaultMapSystem(ProcessPoolSystem):
    """ProcessPoolExecutor.map with its default chunksize (1), as most code calls it."""

    def map(self, func, items):
        return list(self.pool.map(func, items))


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


class MpireSystem(_PoolWithProgressBar):
    def __init__(self, n, start_method="fork", progress_bar=False):
        import mpire
        super().__init__(mpire.WorkerPool(n, start_method=start_method, keep_alive=True),
                         progress_bar)

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


# -- Dask: one LocalCluster of n single-threaded worker processes, shared by every system
_dask = {}


def dask_client(n):
    """The bench's LocalCluster(n_workers=n, threads_per_worker=1), made once per process."""
    if n not in _dask:
        import atexit

        from distributed import Client, LocalCluster
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None, silence_logs=40)
        client = Client(cluster, set_as_default=False)
        _dask[n] = client

        def close():
            client.close()
            cluster.close()
        atexit.register(close)
    return _dask[n]


class DaskBagSystem:
    """dask.bag, as its documentation shows: from_sequence (about 100 partitions), map."""

    def __init__(self, n):
        self.client = dask_client(n)

    def map(self, func, items):
        import dask.bag
        return dask.bag.from_sequence(items).map(func).compute(scheduler=self.client.get)

    def apply(self, func, arg):
        return self.client.submit(func, arg, pure=False).result()

    def close(self):
        pass


class DaskClientMapSystem(DaskBagSystem):
    """client.map: one Dask task per item (for the short workloads only)."""

    def map(self, func, items):
        return self.client.gather(self.client.map(func, list(items), pure=False))


class DaskChunkedSystem(DaskBagSystem):
    """client.map over 4 chunks per worker thread, each run by one task: what a Dask user
    writes by hand for many tiny items."""

    def map(self, func, items):
        items = list(items)
        n = 4 * sum(self.client.nthreads().values())
        size = -(-len(items) // n)
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        futures = self.client.map(_run_chunk, [func] * len(chunks), chunks, pure=False)
        return [y for chunk in self.client.gather(futures) for y in chunk]


def _run_chunk(func, chunk):
    return [func(x) for x in chunk]


SYSTEMS = {
    "nbpar": lambda n: NbparSystem(n),
    "nbpar-fork": lambda n: NbparSystem(n, "fork"),
    "nbpar-spawn": lambda n: NbparSystem(n, "spawn"),
    "nbpar+progress": lambda n: NbparSystem(n, progress_bar=True),
    # a task timeout (one that never fires): every task runs alone, with its own clock
    "nbpar+task_timeout": lambda n: NbparSystem(n, task_timeout=600),
    # BLAS threads uncapped: each worker may use every core (what an uncapped library does)
    "nbpar-no-cap": lambda n: NbparSystem(n, inner_threads=os.cpu_count() or 1),
    "mp.Pool-fork": lambda n: MpPoolSystem(n, "fork"),
    "mp.Pool-forkserver": lambda n: MpPoolSystem(n, "forkserver"),
    "ProcessPoolExecutor": lambda n: ProcessPoolSystem(n, "fork"),
    "ProcessPoolExecutor-default": lambda n: ProcessPoolDefaultMapSystem(n, "fork"),
    "nbpar.Executor": lambda n: NbparExecutorSystem(n),
    "joblib-loky": lambda n: JoblibSystem(n),
    "mpire": lambda n: MpireSystem(n, "fork"),
    "mpire+progress": lambda n: MpireSystem(n, "fork", progress_bar=True),
    "tqdm.process_map": lambda n: TqdmProcessMapSystem(n),
    "nbpar-dask": lambda n: NbparSystem(n, backend="dask"),
    "dask.bag": lambda n: DaskBagSystem(n),
    "client.map": lambda n: DaskClientMapSystem(n),
    "client.map-chunked": lambda n: DaskChunkedSystem(n),
}

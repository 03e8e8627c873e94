"""Memory probes, one system per fresh process (python -m bench.memory WORKLOAD SYSTEM N).

shared: how many copies of a 400 MB array the process tree holds while the workers use it:
(sum of PSS with the big array - sum of PSS with a 1-element array) / array size, so the
interpreters' own memory does not count. "+shared_array" systems put the array in shared
memory with nbpar.shared_array first and drop the original. imap: how much the caller's RSS
grows between the first million and the ten millionth item it consumes.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys

import numpy as np
import psutil

from . import tasks

N_ITEMS = 50_000_000  # 400 MB of float64
_GLOBAL = None


def _global_slice_sum(i):
    return tasks.slice_sum(_GLOBAL, i)


def tree_pss() -> int:
    me = psutil.Process()
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def _use_and_measure(system, make, n):
    global _GLOBAL
    items = range(200)
    if system.startswith("nbpar"):
        import nbpar
        method = {"nbpar": None, "nbpar-fork": "fork", "nbpar-spawn": "spawn"}[
            system.replace("+shared_array", "")]
        # "+shared_array": the array is put in shared memory, its private original dropped
        arr = nbpar.shared_array(make()) if system.endswith("+shared_array") else make()
        with nbpar.WorkerPool(n, start_method=method, shared_objects=arr,
                              keep_alive=True) as pool:
            pool.map(tasks.slice_sum, items)
            return tree_pss()
    arr = make()
    if system == "mp.Pool-fork":
        _GLOBAL = arr
        with mp.get_context("fork").Pool(n) as pool:
            pool.map(_global_slice_sum, items)
            return tree_pss()
    if system == "joblib-loky":
        import joblib
        with joblib.Parallel(n_jobs=n) as parallel:
            parallel(joblib.delayed(tasks.slice_sum)(arr, i) for i in items)
            return tree_pss()
    if system.startswith("mpire"):
        import mpire
        method = "spawn" if system == "mpire-spawn" else "fork"
        with mpire.WorkerPool(n, start_method=method, shared_objects=arr,
                              keep_alive=True) as pool:
            pool.map(tasks.slice_sum, items)
            return tree_pss()
    raise SystemExit(f"unknown system {system}")


def shared(system, n):
    small = _use_and_measure(system, lambda: np.ones(200), n)
    with_big = _use_and_measure(system, lambda: np.random.rand(N_ITEMS), n)
    return {"copies": (with_big - small) / (N_ITEMS * 8)}


def imap(system, n):
    me = psutil.Process()

    def items():
        yield from range(10_000_000)

    def consume(results):
        start = peak = None
        for k, _ in enumerate(results):
            if k % 250_000 == 0:
                rss = me.memory_info().rss
                if k == 1_000_000:  # warmed up: from here on memory must not grow
                    start = peak = rss
                elif start is not None:
                    peak = max(peak, rss)
        return (peak - start) / 2**20

    if system == "nbpar":
        import nbpar
        with nbpar.WorkerPool(n) as pool:
            growth = consume(pool.imap(tasks.square, items()))
    else:
        with mp.get_context("fork").Pool(n) as pool:
            growth = consume(pool.imap(tasks.square, items(), chunksize=1000))
    return {"growth_mb": growth}


if __name__ == "__main__":
    workload, system, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps({"shared": shared, "imap": imap}[workload](system, n)))

"""The work the benchmarks run: importable by every system's workers."""

import time


def square(x):
    return x * x


def spin(x, seconds=0.004):
    """~4 ms of real CPU (a busy loop), not a sleep."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return x


def trivial(x=None):
    return x


def slice_sum(arr, i, n_slices=200):
    """Sum one of n_slices slices of the shared array (touches every page of it)."""
    step = len(arr) // n_slices
    return float(arr[i * step:(i + 1) * step].sum())


def matmul(seed, size=400, rounds=4):
    """NumPy matrix products: BLAS runs them on as many threads as it is allowed."""
    import numpy as np
    rng = np.random.default_rng(seed)
    a = rng.random((size, size))
    for _ in range(rounds):
        a = a @ a
        a /= np.abs(a).max()
    return float(a.sum())


def nap(x, seconds=0.02):
    time.sleep(seconds)
    return x


def row_norm(row):
    """A row function with some arithmetic and a branch (the pandas workload's)."""
    import math
    if row["c"] > 0.5:
        return math.sqrt(row["a"] ** 2 + row["b"] ** 2)
    return math.log1p(row["a"]) * row["b"]


def pause(x, seconds=0.01):
    """10 ms of waiting, no CPU: a task whose ideal speed-up is the number of workers, even
    on a machine with fewer cores (the bench of many workers)."""
    time.sleep(seconds)
    return x

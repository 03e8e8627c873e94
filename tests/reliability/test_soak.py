"""The soak run: many pools and many single calls in one process leave nothing behind.

A long notebook session makes a pool per `%parallel_map` and many small calls. Whatever a
pool costs its caller -- file descriptors, threads, child processes, /dev/shm segments,
memory -- must be given back when it closes, under every start method and for
`nbpar.Executor`. After a warm-up (which starts the fork server and loads what the first pools
import), the counts must be flat: the same numbers of fds, threads, children and segments, and
an RSS within `RSS_SLACK` of the warmed-up one.
"""

from __future__ import annotations

import gc
import operator
import os
import threading

import psutil

import nbpar

POOLS = 300  # in all, warm-up included
CALLS = 2000  # single calls through Executors, in all
WARM_POOLS = 20
# RSS may move by what the allocator keeps of freed memory (0.3 MB measured over the whole
# run). A leak of 15 KB a pool (less than a pool's Boss, state and reports) goes past it.
RSS_SLACK = 4 * 2**20
METHODS = ("forkserver", "fork", "threading", "forkserver", "fork", "threading", "spawn")


def _shm() -> int:
    prefix = f"nbpar-{os.getpid()}-"
    return sum(1 for name in os.listdir("/dev/shm") if name.startswith(prefix))


def _snapshot() -> dict:
    gc.collect()
    me = psutil.Process()
    return {
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "os threads": me.num_threads(),
        "children": len([p for p in me.children(recursive=True)
                         if p.status() != psutil.STATUS_ZOMBIE]),
        "shm": _shm(),
        "rss": me.memory_info().rss,
    }


def _one_pool(k: int):
    method = METHODS[k % len(METHODS)]
    with nbpar.WorkerPool(1, start_method=method) as pool:
        assert pool.map(abs, range(-3, 1)) == [3, 2, 1, 0]


def _calls(n: int, k: int):
    method = ("forkserver", "fork", "threading")[k % 3]
    with nbpar.Executor(1, start_method=method) as ex:
        futures = [ex.submit(operator.add, i, 1) for i in range(n)]
        assert [f.result(timeout=30) for f in futures] == list(range(1, n + 1))


def test_pools_and_calls_leak_nothing():
    for k in range(WARM_POOLS):
        _one_pool(k)
    _calls(50, 0)
    _calls(50, 1)
    _calls(50, 2)
    before = _snapshot()
    for k in range(WARM_POOLS, POOLS):
        _one_pool(k)
    left, k = CALLS - 150, 0
    while left:  # a new Executor every 100 calls
        _calls(min(100, left), k)
        left, k = left - min(100, left), k + 1
    after = _snapshot()

    counts = ("fds", "threads", "os threads", "children", "shm")
    grown = {key: (before[key], after[key]) for key in counts if after[key] != before[key]}
    assert not grown, f"not flat after {POOLS} pools and {CALLS} calls (before, after): {grown}"
    growth = after["rss"] - before["rss"]
    assert growth <= RSS_SLACK, (
        f"RSS grew by {growth / 2**20:.1f} MB over {POOLS - WARM_POOLS} pools and "
        f"{CALLS} calls (allowed: {RSS_SLACK / 2**20:.0f} MB)")

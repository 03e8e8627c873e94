"""Many workers, one item per message: what the pool's own thread costs per task.

With `chunk_size=1` (and always under `task_timeout`, which runs items one at a time) every
item is a round trip of its own through the thread that hands out work and gathers results:
with tens of workers that thread, not the workers, sets the pace. Each `boss-<n>` workload
keeps one warm pool of n workers per system and times four maps on it, interleaved:

- no-op tasks (`tasks.trivial`): the ceiling in tasks per second;
- 10 ms tasks (`tasks.pause`, a sleep: it needs no core, so 64 workers are 64-fold
  parallel even on a small machine): parallel efficiency, n × 10 ms per n items ÷ the time;

each with `chunk_size=1` and with the system's own choice of chunk size. nbpar+task_timeout
runs every task alone whatever the chunk size (a task timeout times each task on its own).
"""

from __future__ import annotations

import statistics
import time

from . import tasks
from .workloads import Result, _interleaved, _opened

NOOP_ITEMS = 10_000  # per no-op map
PAUSE_ROUNDS = 40  # 10 ms tasks per worker per map (the ideal time: 0.4 s)
PAUSE = 0.01
REFERENCE = "mp.Pool-fork"


def scale(systems, repeat, n, workers, items=None) -> list[Result]:
    """The four maps (no-op / 10 ms × chunk_size=1 / automatic) on warm pools of `workers`;
    `items` overrides both maps' sizes (a quick run)."""
    cases = [("no-op", tasks.trivial, items or NOOP_ITEMS, 1),
             ("no-op", tasks.trivial, items or NOOP_ITEMS, None),
             ("10 ms", tasks.pause, items or PAUSE_ROUNDS * workers, 1),
             ("10 ms", tasks.pause, items or PAUSE_ROUNDS * workers, None)]
    results = []
    with _opened(systems, workers) as pools:
        for pool in pools.values():  # every worker started and the task functions loaded
            pool.map(tasks.pause, list(range(2 * workers)), chunk_size=1)
        for what, func, count, chunk in cases:
            data = list(range(count))

            def measure(name, func=func, data=data, chunk=chunk):
                start = time.perf_counter()
                out = pools[name].map(func, data, chunk_size=chunk)
                elapsed = time.perf_counter() - start
                assert list(out) == data, f"{name} returned wrong results"
                return elapsed
            samples = _interleaved(systems, repeat, measure)
            results.append(_result(workers, what, count, chunk, samples,
                                   PAUSE * count / workers if func is tasks.pause else None))
    return results


def _result(workers, what, count, chunk, samples, ideal):
    chunk_text = "chunk_size=1" if chunk == 1 else "automatic chunk size"
    result = Result(f"boss-{workers} {what}, {chunk_text}",
                    f"{count:,} × {what} tasks, {workers} warm workers", "s", REFERENCE,
                    samples, target(what, chunk))
    medians = {name: statistics.median(v) for name, v in samples.items()}
    rate = {name: count / t for name, t in medians.items()}
    result.extra["tasks/s"] = rate
    result.formats["tasks/s"] = ",.0f"
    if REFERENCE in rate:
        result.extra["tasks/s ÷ mp.Pool's"] = {name: r / rate[REFERENCE]
                                               for name, r in rate.items()}
        result.formats["tasks/s ÷ mp.Pool's"] = ".2f"
    if ideal is not None:
        result.extra["parallel efficiency"] = {name: ideal / t for name, t in medians.items()}
    return result


def target(what, chunk):
    if chunk != 1:
        return "nbpar ≤ 1.0 × mp.Pool(fork)"
    if what == "no-op":
        return "nbpar ≥ 1.5 × mp.Pool(fork)'s tasks/s (32 workers)"
    return "nbpar's parallel efficiency ≥ 95 % (32 workers)"

"""The Boss thread's own cost per task, for one map of no-op tasks one item per message.

    python -m bench.boss_profile                  # 32 workers, 20,000 items, cProfile
    python -m bench.boss_profile -n 64 --cpu-only # CPU per task only (no profiler overhead)

Prints the Boss thread's CPU time per task (read from the kernel's per-thread counters, so
the caller's and the workers' time is left out), the workers' CPU time per task, and, under
cProfile, the function calls per task and the functions that take the most of its time. The
profile covers the thread's whole life: its workers' start and retirement and a warm-up map
of 2 items per worker, small next to the measured map.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import threading
import time

import psutil

from nbpar import WorkerPool
from nbpar.boss import BossThread

from . import tasks


def _thread_cpu(native_id) -> float:
    for t in psutil.Process().threads():
        if t.id == native_id:
            return t.user_time + t.system_time
    raise LookupError(f"no thread {native_id}")


def _workers_cpu() -> float:
    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.boss_profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--workers", type=int, default=32)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--chunk-size", type=int, default=1)
    parser.add_argument("--task-timeout", type=float, default=None,
                        help="the pool's task_timeout (its tasks then run one at a time)")
    parser.add_argument("--top", type=int, default=30, help="functions listed")
    parser.add_argument("--cpu-only", action="store_true", help="no profiler")
    args = parser.parse_args(argv)

    profiles = []
    if not args.cpu_only:
        run = BossThread._run

        def profiled(self):
            profile = cProfile.Profile()
            profiles.append(profile)
            profile.enable()
            try:
                run(self)
            finally:
                profile.disable()
        BossThread._run = profiled

    items = list(range(args.items))
    pool = WorkerPool(args.workers, keep_alive=True, task_timeout=args.task_timeout)
    try:
        pool.map(tasks.pause, list(range(2 * args.workers)), chunk_size=1)
        boss = pool._boss.thread.native_id
        cpu, workers, start = _thread_cpu(boss), _workers_cpu(), time.perf_counter()
        out = pool.map(tasks.trivial, items, chunk_size=args.chunk_size)
        wall, cpu = time.perf_counter() - start, _thread_cpu(boss) - cpu
        workers = _workers_cpu() - workers
        assert out == items
    finally:
        pool.close()
        pool.join()
    print(f"{args.workers} workers, {args.items:,} no-op items, chunk_size={args.chunk_size}"
          + (f", task_timeout={args.task_timeout}" if args.task_timeout else "") +
          f": {args.items / wall:,.0f} tasks/s; Boss thread CPU {cpu / args.items * 1e6:.1f} µs "
          f"per task ({cpu / wall:.0%} of the wall time), "
          f"workers {workers / args.items * 1e6:.1f} µs"
          + (" under cProfile" if profiles else ""))
    if profiles:
        stats = pstats.Stats(profiles[0], stream=sys.stdout)
        print(f"calls per task on the Boss thread: {stats.total_calls / args.items:.1f}")
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    assert threading.current_thread() is threading.main_thread()
    sys.exit(main())

"""Control latencies of nbpar (python -m bench.control N REPEAT), in a fresh process.

halt→last start: after halt() returns, the latest start time any task records itself
(0 if none started later). stop(now)→gone: from stop(now=True) to every worker process gone.
kill→reported: from SIGKILL of a busy worker to the map raising WorkerDiedError.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time

import psutil

import nbpar


def _stamped_nap(starts, x):
    starts[x] = time.time()
    time.sleep(0.02)
    return x


def _nap(x, seconds):
    time.sleep(seconds)
    return x


def _until(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise TimeoutError


def _background(pool, func, items, **kwargs):
    outcome = {}

    def run():
        try:
            pool.map(func, items, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            outcome["error"], outcome["at"] = exc, time.monotonic()
    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def halt_latency(n):
    starts = mp.Array("d", 400, lock=False)
    with nbpar.WorkerPool(n, shared_objects=starts) as pool:
        thread, _ = _background(pool, _stamped_nap, range(400))
        _until(lambda: pool.report().done >= 20)
        halted_at = time.time()
        pool.halt()
        _until(lambda: all(w.state != "busy" for w in pool.report().workers))
        latest = max(starts[:])
        pool.resume()
        thread.join()
    return max(0.0, latest - halted_at)


def stop_now(n):
    with nbpar.WorkerPool(n) as pool:
        thread, _ = _background(pool, _nap_pair, [(i, 5) for i in range(20)])
        _until(lambda: sum(w.state == "busy" for w in pool.report().workers) == n)
        procs = [psutil.Process(w.pid) for w in pool.report().workers]
        start = time.monotonic()
        pool.stop(now=True)
        psutil.wait_procs(procs, timeout=10)
        elapsed = time.monotonic() - start
        thread.join()
    return elapsed


def _nap_pair(pair):
    return _nap(*pair)


def kill_reported(n):
    with nbpar.WorkerPool(n) as pool:
        thread, outcome = _background(pool, _nap_pair, [(i, 5) for i in range(20)])
        _until(lambda: sum(w.state == "busy" for w in pool.report().workers) == n)
        pid = pool.report().workers[0].pid
        start = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        thread.join()
        assert isinstance(outcome["error"], nbpar.WorkerDiedError)
    return outcome["at"] - start


if __name__ == "__main__":
    n, repeat = int(sys.argv[1]), int(sys.argv[2])
    probes = {"halt→last start": halt_latency, "stop(now)→gone": stop_now,
              "kill→reported": kill_reported}
    rows = {name: [] for name in probes}
    for _ in range(max(1, repeat // 2)):
        for name, probe in probes.items():
            rows[name].append(probe(n))
    print(json.dumps(rows))

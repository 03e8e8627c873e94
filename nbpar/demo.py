"""nbpar in one run: a live parallel map steered from code with HALT, RESUME and STOP.

    python -m nbpar.demo

A map of a few hundred CPU-bound items runs in a background thread of a 2-worker pool with a
progress bar, while this thread halts it, checks that nothing new finishes while halted,
resumes it, stops it, and then continues the stopped map from its report. The full result
list is checked against a serial run.
"""

from __future__ import annotations

import sys
import threading
import time

import nbpar

N_ITEMS = 300
SPAN = 5_000  # numbers tested per item: ~5-25 ms of pure-Python work


def count_primes(start: int) -> int:
    """How many primes lie in [start, start + SPAN) -- trial division, on purpose slow."""
    count = 0
    for n in range(max(start, 2), start + SPAN):
        if n % 2 == 0:
            count += n == 2
            continue
        d = 3
        while d * d <= n:
            if n % d == 0:
                break
            d += 2
        else:
            count += 1
    return count


def _wait_for(pool, predicate, timeout=20.0, look_every=0.05):
    """Look at the pool's report until `predicate(report)` holds; return that report."""
    deadline = time.monotonic() + timeout
    looks = threading.Event()  # never set: its wait is the pause between two looks
    while True:
        report = pool.report()
        if predicate(report):
            return report
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting; last report:\n{report}")
        looks.wait(look_every)


def main() -> int:
    items = [i * SPAN for i in range(N_ITEMS)]
    started = time.monotonic()
    outcome: dict = {}

    def run_map(pool):
        try:
            outcome["results"] = pool.map(count_primes, items, progress_bar=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = exc

    with nbpar.WorkerPool(2) as pool:
        print(f"mapping count_primes over {N_ITEMS} items in {pool!r}", flush=True)
        runner = threading.Thread(target=run_map, args=(pool,), name="demo-map")
        runner.start()

        _wait_for(pool, lambda r: r.status == "running" and r.done >= N_ITEMS // 6)
        pool.halt()
        at_halt = pool.report().done
        # Tasks already handed to a worker still finish; wait until the workers are idle.
        halted = _wait_for(pool, lambda r: r.status == "halted"
                           and not any(w.state == "busy" for w in r.workers))
        time.sleep(0.5)  # nothing should happen in this half second
        later = pool.report()
        print(f"\nHALT sent at {at_halt} done; the tasks already in the workers' hands "
              f"finished: {halted.done} done; 0.5 s later, still halted: {later.done} done "
              f"(status {later.status})", flush=True)
        if later.done != halted.done:
            print("FAIL: items finished while the pool was halted", file=sys.stderr)
            return 1

        pool.resume()
        _wait_for(pool, lambda r: r.status == "running" and r.done >= halted.done + 40)
        pool.stop()
        runner.join(30)
        error = outcome.get("error")
        if not isinstance(error, nbpar.StoppedError):
            print(f"FAIL: expected StoppedError from the stopped map, got "
                  f"{error!r} / {len(outcome.get('results') or [])} results", file=sys.stderr)
            return 1
        stopped = error.report
        print(f"\nSTOP: the map raised {type(error).__name__}: {error}")
        print(stopped)
        print(f"  {len(stopped.results)} results kept, {len(stopped.pending)} items pending",
              flush=True)

        results = pool.map(count_primes, report=stopped, progress_bar=True)

    expected = [count_primes(x) for x in items]
    ok = results == expected
    print(f"\ncontinued: {len(results)} results, equal to a serial run: {ok}; "
          f"{sum(results)} primes below {N_ITEMS * SPAN}; "
          f"{time.monotonic() - started:.1f} s in all")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""What showing a map costs: 200k tiny items with the pool widget or the tqdm bar vs without.

    python -m bench.ui_overhead [-n ITEMS] [-r REPEAT] [-w WORKERS]

One kept-alive pool runs every variant, interleaved (the order rotates each round), and the
medians are compared. "widget" times the map while a PoolWidget follows it at its 10 Hz refresh
rate, with the pool's output routed to its pane, headless (no frontend: what is measured is the
report snapshots and the redraws, which is what could slow the map); the widget is built before
the map starts, as %parallel_map does, and that one-off cost (building ~15 ipywidgets, and
closing) is reported on its own line. "tqdm" is progress_bar=True, the text bar written to
/dev/null, bar creation included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import nbpar


def tiny(x):
    return x + 1


def plain(pool, items, costs):
    start = time.perf_counter()
    pool.map(tiny, items)
    return time.perf_counter() - start


def widget(pool, items, costs):
    from nbpar.ui.widget import PoolWidget

    built = time.perf_counter()
    view = PoolWidget.for_map(pool, show=False)
    start = time.perf_counter()
    try:
        pool.map(tiny, items)
    finally:
        took = time.perf_counter() - start
        closing = time.perf_counter()
        view.close()
        costs.append(start - built + time.perf_counter() - closing)
    return took


def tqdm_bar(pool, items, costs):
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        start = time.perf_counter()
        pool.map(tiny, items, progress_bar=True)
        return time.perf_counter() - start


VARIANTS = {"plain": plain, "widget": widget, "tqdm": tqdm_bar}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.ui_overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--items", type=int, default=200_000)
    parser.add_argument("-r", "--repeat", type=int, default=21)
    parser.add_argument("-w", "--workers", type=int, default=2)
    args = parser.parse_args(argv)

    items = list(range(args.items))
    times: dict = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    costs: list = []
    with nbpar.WorkerPool(args.workers, keep_alive=True) as pool:
        for name in names:  # warm up: workers started, function sent, batch sizes learnt
            VARIANTS[name](pool, items, [])
        for round_ in range(args.repeat):
            order = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in order:
                times[name].append(VARIANTS[name](pool, items, costs))

    base = statistics.median(times["plain"])
    print(f"{args.items:,} tiny items, {args.workers} workers, {args.repeat} interleaved rounds"
          f" (overhead: of the medians; and the median of each round's own ratio)")
    for name in names:
        median = statistics.median(times[name])
        paired = statistics.median(t / p for t, p in zip(times[name], times["plain"]))
        print(f"  {name:7s} median {median * 1000:8.1f} ms   {100 * (median / base - 1):+5.1f} %"
              f"   paired {100 * (paired - 1):+5.1f} %")
    print(f"  widget built and closed once per map: median "
          f"{statistics.median(costs) * 1000:.1f} ms (before the map starts and after it ends)")


if __name__ == "__main__":
    main()

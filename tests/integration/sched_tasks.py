"""Tasks for the scheduler, limit and logging tests (importable under every start method)."""

import os
import time

import nbpar


def stamped(path, x, seconds=0.05, megabytes=0):
    """Hold `megabytes` for `seconds`; record (item, start, end, pid)."""
    start = time.time()
    block = bytearray(megabytes * 2**20)  # touched: really resident
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(seconds)
    del block
    end = time.time()
    with open(path, "a") as f:
        f.write(f"{x} {start} {end} {os.getpid()}\n")
    return x


def sleep_for(path, pair):
    x, seconds = pair
    return stamped(path, x, seconds)


def chatty(x, lines=20):
    log = nbpar.get_logger("nbpar.test.chatty")
    body = "\n".join(f"record {x} line {i} " + "x" * 200 for i in range(lines))
    log.info("BEGIN %s\n%s\nEND %s", x, body, x)
    log.debug("a debug record from %s", x)
    return x


def max_overlap(rows):
    """The largest number of tasks running at the same instant, from (start, end) rows."""
    events = sorted([(s, 1) for _, s, _, _ in rows] + [(e, -1) for _, _, e, _ in rows])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best

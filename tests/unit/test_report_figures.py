"""The figures a report gives the widget: CPU and memory per worker process (sampled when a
report is asked for), retired workers told apart from dead ones, and a rate that counts only
running time and this run's items."""

import functools
import threading
import time

import pytest

import nbpar
import waiting

pytestmark = pytest.mark.timeout(90)
wait_for = functools.partial(waiting.wait_for, timeout=30.0)


def burn_and_hold(seconds):
    block = bytearray(64 * 2**20)  # 64 MB of the worker's own, touched page by page
    for i in range(0, len(block), 4096):
        block[i] = 1
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return len(block)


def test_reports_give_each_worker_process_its_cpu_and_memory():
    with nbpar.WorkerPool(1, start_method="fork") as pool:
        runner = threading.Thread(target=_quietly, args=(pool.map, burn_and_hold, [20]),
                                  daemon=True)
        runner.start()

        def busy_figures():
            (w,) = pool.report().workers
            ok = w.state == "busy" and w.cpu is not None and w.cpu > 50 and (
                w.uss or 0) > 60 * 2**20
            return w if ok else None

        worker = wait_for(busy_figures)
        # one busy core: about 100; the Boss's wall clock and the worker's CPU clock are read
        # one after the other, so a loaded machine skews a 0.5 s interval by some tens of percent
        assert worker.cpu < 190
        assert worker.rss >= worker.uss > 60 * 2**20
        pool.stop(now=True)
        runner.join(30)
    (after,) = pool.report().workers
    assert after.state == "dead" and after.cpu is after.rss is after.uss is None


def test_thread_workers_have_no_process_figures():
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        pool.map(abs, range(4))
        assert all(w.cpu is w.rss is w.uss is None for w in pool.report().workers)


def test_workers_that_retire_are_retired_not_dead():
    with nbpar.WorkerPool(2, max_tasks_per_worker=1) as pool:
        assert {w.state for w in pool.report().workers} == {"dead"}  # never started
        pool.map(abs, range(4), chunk_size=1)
        wait_for(lambda: all(w.state == "retired" for w in pool.report().workers))


def gated(x, gate=threading.Event()):  # noqa: B008 - one gate shared by every call
    """Waits for the test to open its gate (a thread pool's task)."""
    if x == "open":
        gate.set()
    gate.wait(30)
    return x


def test_halted_time_and_an_earlier_run_do_not_count_in_the_rate():
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        runner = threading.Thread(target=lambda: _quietly(pool.map, gated, range(6),
                                                          chunk_size=1), daemon=True)
        runner.start()
        wait_for(lambda: pool.report().workers[0].state == "busy")
        pool.halt()
        gated("open")
        wait_for(lambda: pool.report().done == 1 and pool.report().workers[0].state == "idle")
        time.sleep(1.0)  # a second halted, which the rate must not count
        pool.stop()
        runner.join(30)
        first = pool.report()
        assert first.status == "stopped" and first.done == 1
        assert first.halted >= 1.0 and first.running_time < first.elapsed - 0.9
        assert first.rate == pytest.approx(first.done / first.running_time)

        pool.map(gated, report=first)
        second = pool.report()
    assert (second.status, second.done, second.prior) == ("finished", 6, 1)
    assert second.rate == pytest.approx(5 / second.running_time)


def _quietly(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except nbpar.StoppedError:
        pass

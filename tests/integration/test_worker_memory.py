"""max_worker_memory=: a worker whose own memory passed the limit after a task is replaced by
a fresh process (loky's memory-leak guard), and the worker table says so."""

import collections
import os

import pytest

import nbpar

PROCESS_METHODS = ["fork", "forkserver", "spawn"]
LEAK = 20 * 2**20
LIMIT = 50 * 2**20

_kept = []  # what the leaking task never gives back (one list per worker process)


def leaky(x):
    _kept.append(b"\x01" * LEAK)  # written, so really resident
    return os.getpid()


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_a_worker_past_the_limit_is_recycled_after_its_task(method):
    with nbpar.WorkerPool(1, start_method=method, max_worker_memory=LIMIT) as pool:
        pids = pool.map(leaky, range(8), chunk_size=1)
        report = pool.report()
    runs = collections.Counter(pids)
    assert len(runs) >= 2, runs  # without the limit: one process holding 160 MB
    # a process is retired after the task that took it past 50 MB: its third 20 MB at the
    # latest (one more may have been queued to it already)
    assert max(runs.values()) <= 4, runs
    (worker,) = report.workers
    assert worker.recycled == len(runs) - 1
    assert worker.memory is not None and worker.memory > LEAK
    assert f"recycled {worker.recycled}x for memory" in str(report)


def test_no_limit_no_recycling():
    with nbpar.WorkerPool(1, start_method="fork") as pool:
        pids = pool.map(leaky, range(4), chunk_size=1)
        assert pool.report().workers[0].recycled is None
    assert len(set(pids)) == 1


@pytest.mark.parametrize("bad", [0, -5, "1GB", True])
def test_a_bad_limit_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="max_worker_memory"):
        nbpar.WorkerPool(1, start_method="fork", max_worker_memory=bad)


def test_threads_have_no_memory_of_their_own_to_limit():
    with pytest.raises(ValueError, match="max_worker_memory applies to worker processes"):
        nbpar.WorkerPool(1, start_method="threading", max_worker_memory=LIMIT)


def test_the_widget_table_shows_memory_and_recycling():
    pytest.importorskip("ipywidgets")
    from nbpar.ui.widget import _workers_html
    with nbpar.WorkerPool(1, start_method="fork", max_worker_memory=LIMIT) as pool:
        pool.map(leaky, range(4), chunk_size=1)
        html = _workers_html(pool.report().workers)
    assert "<th style='padding:1px 8px;text-align:left'>recycled</th>" in html
    assert " MB</td>" in html

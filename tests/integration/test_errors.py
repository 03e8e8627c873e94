"""Errors come back clearly, name the item, keep what finished, and leave the pool usable."""

import concurrent.futures.process
import time

import pytest

import nbpar
import tasks

PROCESS_METHODS = ["fork", "forkserver", "spawn"]
METHODS = PROCESS_METHODS + ["threading"]


@pytest.mark.parametrize("method", METHODS)
def test_exception_keeps_its_type_traceback_and_item(method):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        with pytest.raises(ValueError, match="bad item 7") as info:
            pool.map(tasks.raise_at, range(200), chunk_size=1)
        err = info.value
        assert isinstance(err.__cause__, nbpar.errors.RemoteTraceback)
        assert "raise_at" in err.__cause__.tb and "ValueError" in err.__cause__.tb
        assert any("item 7 (index 7)" in note for note in err.__notes__)
        report = pool.report()
        assert report.status == "failed"
        assert report.errors[0].index == 7 and report.errors[0].type == "ValueError"
        assert report.done < 200  # the rest of the map was stopped
        assert all(report.results[i] == i for i in report.results)
        assert 7 in report.pending_indices or report.failed == 1
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]


@pytest.mark.parametrize("method", PROCESS_METHODS)
@pytest.mark.parametrize("func,cause", [(tasks.exit_at, "exit code 3"),
                                        (tasks.segfault_at, "SIGSEGV(-11)"),
                                        (tasks.sigkill_at, "SIGKILL(-9)")])
def test_dead_worker_is_named_and_replaced(method, func, cause):
    with nbpar.WorkerPool(2, start_method=method, keep_alive=True) as pool:
        start = time.monotonic()
        with pytest.raises(nbpar.WorkerDiedError) as info:
            pool.map(func, range(10), chunk_size=4)
        assert time.monotonic() - start < 2.0
        err = info.value
        assert isinstance(err, concurrent.futures.process.BrokenProcessPool)
        assert cause in str(err) and "item 5 (index 5)" in str(err)
        assert err.index == 5 and err.item == 5
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_worker_killed_from_outside_is_reported(method):
    import os
    import signal
    import threading
    with nbpar.WorkerPool(1, start_method=method) as pool:
        failure = []

        def run():
            try:
                pool.map(tasks.nap, range(100), chunk_size=1)
            except nbpar.WorkerDiedError as exc:
                failure.append(exc)
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            busy = [w for w in pool.report().workers if w.state == "busy" and w.pid]
            if busy:
                break
        os.kill(busy[0].pid, signal.SIGKILL)
        killed = time.monotonic()
        thread.join(10)
        assert failure and "SIGKILL" in str(failure[0])
        assert time.monotonic() - killed < 2.0


@pytest.mark.parametrize("method", METHODS)
def test_task_timeout(method):
    with nbpar.WorkerPool(2, start_method=method, task_timeout=0.5) as pool:
        start = time.monotonic()
        with pytest.raises(nbpar.TaskTimeoutError, match=r"item 3 \(index 3\)") as info:
            pool.map(tasks.sleep_at, range(6))
        assert isinstance(info.value, TimeoutError)
        assert time.monotonic() - start < 3.0
        if method != "threading":  # a thread cannot be killed; it is abandoned instead
            assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_unpicklable_argument_is_named(method):
    import threading
    items = [1, 2, threading.Lock(), 4]
    with nbpar.WorkerPool(2, start_method=method) as pool:
        with pytest.raises(nbpar.SerializationError, match=r"index 2.*lock") as info:
            pool.map(tasks.square, items, chunk_size=1)
        assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_unpicklable_result_is_named(method):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        with pytest.raises(nbpar.SerializationError, match="Unpicklable") as info:
            pool.map(tasks.return_unpicklable, range(8), chunk_size=8)
        assert any("index 4" in note for note in info.value.__notes__)
        assert pool.report().results == {0: 0, 1: 1, 2: 2, 3: 3}


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_unpicklable_exception_is_named(method):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        with pytest.raises(nbpar.SerializationError, match="LockedError"):
            pool.map(tasks.raise_unpicklable, range(5))


@pytest.mark.parametrize("method", METHODS)
def test_worker_init_failure_is_reported_as_such(method):
    with nbpar.WorkerPool(2, start_method=method, worker_init=tasks.failing_init) as pool:
        with pytest.raises(RuntimeError, match="init went wrong") as info:
            pool.map(tasks.square, range(10))
        assert any("worker_init" in note for note in info.value.__notes__)


@pytest.mark.parametrize("method", METHODS)
def test_worker_exit_failure_is_reported_as_such(method):
    with pytest.raises(RuntimeError, match="exit went wrong") as info:
        with nbpar.WorkerPool(2, start_method=method, worker_exit=tasks.failing_exit) as pool:
            pool.map(tasks.square, range(10))
    assert any("worker_exit" in note for note in info.value.__notes__)


@pytest.mark.parametrize("kwargs,error", [
    (dict(n_jobs=0), ValueError), (dict(n_jobs=-2), ValueError), (dict(n_jobs=1.5), ValueError),
    (dict(start_method="bogus"), ValueError), (dict(task_timeout=0), ValueError),
    (dict(max_tasks_per_worker=0), ValueError), (dict(worker_init=3), TypeError),
    (dict(scheduler="fifo"), TypeError),
])
def test_bad_pool_options(kwargs, error):
    n = kwargs.pop("n_jobs", 1)
    with pytest.raises(error):
        nbpar.WorkerPool(n, **kwargs)


def _gen(x):
    yield x


@pytest.mark.parametrize("call,error,match", [
    (lambda p: p.map(42, range(3)), TypeError, "callable"),
    (lambda p: p.map(_gen, range(3)), TypeError, "generator function"),
    (lambda p: p.map(tasks.square, range(3), chunk_size=0), ValueError, "chunk_size"),
    (lambda p: p.map(tasks.square, range(3), chunk_size=2.5), ValueError, "chunk_size"),
    (lambda p: p.map(tasks.square), TypeError, "iterable"),
    (lambda p: p.map(tasks.square, report="nope"), TypeError, "Report"),
])
def test_bad_map_arguments(call, error, match):
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        with pytest.raises(error, match=match):
            call(pool)


def test_report_from_another_function_is_refused():
    with nbpar.WorkerPool(1, start_method="fork") as pool:
        with pytest.raises(ValueError):
            pool.map(tasks.raise_at, range(10))
        report = pool.report()
        with pytest.raises(ValueError, match="raise_at"):
            pool.map(tasks.square, report=report)


def test_failing_iterable_fails_the_map_and_keeps_results():
    def items():
        yield from range(50)
        raise OSError("the source broke")

    with nbpar.WorkerPool(2, start_method="fork") as pool:
        with pytest.raises(OSError, match="the source broke"):
            pool.map(tasks.square, items())


@pytest.mark.parametrize("stated,real", [(100, 50), (10, 50)])
def test_iterable_len_that_lies_is_a_clear_error(stated, real):
    with nbpar.WorkerPool(2, start_method="fork") as pool:
        with pytest.raises(ValueError, match=f"iterable_len={stated}, but the iterable gave"):
            pool.map(tasks.square, iter(range(real)), iterable_len=stated)
        got = []
        with pytest.raises(ValueError, match=f"iterable_len={stated}, but the iterable gave"):
            for value in pool.imap(tasks.square, iter(range(real)), iterable_len=stated):
                got.append(value)
        assert got == [x * x for x in range(len(got))]  # what came before was delivered
        assert got or stated < real
        with pytest.raises(ValueError, match="iterable_len"):
            pool.map(tasks.square, range(3), iterable_len=-1)

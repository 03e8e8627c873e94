"""nbpar.Executor against concurrent.futures.ProcessPoolExecutor: one suite, run on both.

Every case runs on the stdlib's executor and on nbpar's; a difference is a failing test. The
two documented differences (a dead worker or a failing initializer breaks only the calls it
concerns, and the executor stays usable) are asserted as such, side by side.
"""

import multiprocessing
import threading
import time
import weakref
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pytest

import compat_tasks as t
import nbpar
from waiting import wait_for

KINDS = ["stdlib", "nbpar"]
SPAWN = multiprocessing.get_context("spawn")  # the stdlib's fork server would outlive a test


def make(kind, max_workers=2, **options):
    if kind == "stdlib":
        return ProcessPoolExecutor(max_workers, **options)
    return nbpar.Executor(max_workers, **options)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def ex(kind):
    with make(kind) as executor:
        yield executor


class Watch:
    """Weak references to objects; `all_freed()` says whether every one of them was freed by
    reference counting alone (no gc pass), as the stdlib's test_no_stale_references asks."""

    def __init__(self):
        self.events, self.refs = [], []

    def __call__(self, obj):
        event = threading.Event()
        self.events.append(event)
        self.refs.append(weakref.ref(obj, lambda _: event.set()))
        return obj

    def all_freed(self, timeout=10):
        deadline = time.monotonic() + timeout
        return all(e.wait(max(0.0, deadline - time.monotonic())) for e in self.events)


# -- submit

def test_submit_passes_keywords_named_fn_and_self(ex):
    future = ex.submit(t.echo, 1, fn=2, self=3)
    assert future.result(timeout=30) == ((1,), {"fn": 2, "self": 3})


def test_submit_returns_a_future_with_the_result_or_the_exception(ex):
    assert ex.submit(t.add, 2, 3).result(timeout=30) == 5
    with pytest.raises(ValueError, match="bad item 3"):
        ex.submit(t.fail_at, 3).result(timeout=30)


def test_submit_after_shutdown_raises_runtime_error(kind):
    executor = make(kind)
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit(t.square, 2)


# -- map

def test_map_zips_iterables_and_keeps_input_order(ex):
    assert list(ex.map(t.add, range(50), range(100, 130))) == [
        a + b for a, b in zip(range(50), range(100, 130))]


@pytest.mark.parametrize("chunksize", [1, 3, 100])
def test_map_with_chunksize(ex, chunksize):
    assert list(ex.map(t.square, range(40), chunksize=chunksize)) == [x * x for x in range(40)]


@pytest.mark.parametrize("chunksize", [0, -1])
def test_map_refuses_a_chunksize_below_one(ex, chunksize):
    with pytest.raises(ValueError):
        ex.map(t.square, range(4), chunksize=chunksize)


def test_map_raises_an_items_exception_when_the_iterator_reaches_it(ex):
    results = ex.map(t.fail_at, range(6))
    got = []
    with pytest.raises(ValueError, match="bad item 3"):
        for value in results:
            got.append(value)
    assert got == [0, 1, 2]


def test_map_timeout_raises_timeout_error(ex):
    results = ex.map(t.sleep_for, [0, 1.5], timeout=0.5)
    assert next(results) == 0
    with pytest.raises(TimeoutError):
        next(results)


def test_map_of_nothing(ex):
    assert list(ex.map(t.square, [])) == []


# -- shutdown

def test_shutdown_with_cancel_futures_cancels_what_has_not_started(kind):
    executor = make(kind, 1)
    futures = [executor.submit(t.sleep_for, 0.3) for _ in range(12)]
    wait_for(lambda: futures[0].running() or futures[0].done(), what="the first call started")
    executor.shutdown(wait=True, cancel_futures=True)
    assert all(f.done() for f in futures)
    cancelled = [f for f in futures if f.cancelled()]
    assert cancelled, "nothing was cancelled"
    assert not futures[0].cancelled() and futures[0].result() == 0.3
    assert all(f.result() == 0.3 for f in futures if not f.cancelled())


def test_shutdown_without_wait_returns_and_the_work_still_completes(kind):
    executor = make(kind, 1)
    future = executor.submit(t.sleep_for, 0.2)
    executor.shutdown(wait=False)
    assert future.result(timeout=30) == 0.2
    executor.shutdown(wait=True)


# -- the stdlib's constructor options

def test_initializer_runs_with_initargs_in_every_worker(kind):
    with make(kind, 2, initializer=t.initialize, initargs=("ready",)) as executor:
        assert set(executor.map(t.initialized, range(8))) == {"ready"}


def test_a_failing_initializer_breaks_the_calls_with_broken_process_pool(kind):
    executor = make(kind, 1, initializer=t.broken_init)
    try:
        with pytest.raises(BrokenProcessPool):
            executor.submit(t.square, 2).result(timeout=30)
    finally:
        executor.shutdown()


def test_max_tasks_per_child_replaces_the_worker(kind):
    with make(kind, 1, max_tasks_per_child=1, mp_context=SPAWN) as executor:
        pids = [executor.submit(t.pid).result(timeout=60) for _ in range(3)]
    assert len(set(pids)) == 3


@pytest.mark.parametrize("context, expected", [("fork", "parent"), ("spawn", "module")])
def test_mp_context_sets_how_workers_start(kind, context, expected, monkeypatch):
    monkeypatch.setattr(t, "MARK", "parent")  # only a forked worker inherits this
    with make(kind, 1, mp_context=multiprocessing.get_context(context)) as executor:
        assert executor.submit(t.read_mark).result(timeout=60) == expected


@pytest.mark.parametrize("options, error", [
    (dict(max_workers=0), ValueError),
    (dict(max_workers=-1), ValueError),
    (dict(initializer=42), TypeError),
    (dict(max_tasks_per_child=0, mp_context=SPAWN), ValueError),
    (dict(max_tasks_per_child="1", mp_context=SPAWN), TypeError),
])
def test_bad_constructor_arguments(kind, options, error):
    options = dict(options)
    max_workers = options.pop("max_workers", 1)
    with pytest.raises(error):
        make(kind, max_workers, **options)


# -- a worker that dies

def test_a_dead_worker_breaks_the_future_it_held(kind):
    executor = make(kind, 2)
    try:
        with pytest.raises(BrokenProcessPool):
            executor.submit(t.die).result(timeout=30)
        if kind == "stdlib":  # the stdlib's executor is unusable from then on
            with pytest.raises(BrokenProcessPool):
                executor.submit(t.square, 3)
        else:  # nbpar's replaces the worker (documented): the next call runs
            assert executor.submit(t.square, 3).result(timeout=30) == 9
    finally:
        executor.shutdown()


def test_a_dead_worker_during_map_raises_broken_process_pool(kind):
    executor = make(kind, 2)
    try:
        with pytest.raises(BrokenProcessPool):
            list(executor.map(t.die, range(3)))
    finally:
        executor.shutdown()


# -- no stale references (the stdlib's test_no_stale_references, extended)

def test_submit_holds_no_reference_to_a_bound_methods_object(ex):
    watch = Watch()

    def run():
        obj = watch(t.Big())
        ex.submit(obj.method, 1)  # the future is dropped at once
    run()
    assert watch.all_freed(), "the executor still holds the submitted callable"


def test_submit_holds_no_reference_to_the_arguments_or_the_result(ex):
    watch = Watch()

    def run():
        arg = watch(t.Big())
        result = watch(ex.submit(t.identity, arg).result(timeout=30))
        assert result.data == arg.data
    run()
    assert watch.all_freed(), "the executor still holds the arguments or the result"


def test_map_holds_no_reference_to_the_callable_the_items_or_the_results(ex):
    watch = Watch()

    def run():
        obj, item = watch(t.Big()), watch(t.Big(10))
        results = list(ex.map(obj.method, [item, item]))
        assert [watch(r).data for r in results] == [item.data] * 2
    run()
    assert watch.all_freed(), "the executor still holds the map's callable, items or results"


# -- the same promises on WorkerPool's own single calls (nbpar only: no stdlib twin)

@pytest.fixture
def pool():
    with nbpar.WorkerPool(2, keep_alive=True) as p:
        yield p


def test_workerpool_submit_and_apply_async_pass_keywords_named_func_and_self(pool):
    assert pool.submit(t.echo, 1, func=2, self=3).result(timeout=30) == (
        (1,), {"func": 2, "self": 3})
    assert pool.apply_async(t.echo, (1,), {"func": 2, "self": 3}).get(timeout=30) == (
        (1,), {"func": 2, "self": 3})


@pytest.mark.parametrize("call", ["submit", "apply_async"])
def test_workerpool_single_calls_hold_no_reference(pool, call):
    watch = Watch()

    def run():
        obj, arg = watch(t.Big()), watch(t.Big(10))
        if call == "submit":
            result = pool.submit(obj.method, arg).result(timeout=30)
        else:
            result = pool.apply_async(obj.method, (arg,)).get(timeout=30)
        assert watch(result).data == arg.data
        pool.submit(obj.method, arg)  # and one whose future is dropped at once
    run()
    assert watch.all_freed(), f"the pool still holds what {call} was given or gave back"

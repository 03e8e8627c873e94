"""nbpar.mpire.WorkerPool against mpire.WorkerPool: one suite, run on both, and the per-call
options on nbpar's own WorkerPool."""

import threading

import numpy as np
import pytest

import compat_tasks as t
import nbpar
import nbpar.mpire
from waiting import wait_for

mpire = pytest.importorskip("mpire")

KINDS = ["mpire", "nbpar"]


def make(kind, n=2, **options):
    if kind == "mpire":
        return mpire.WorkerPool(n, **options)
    return nbpar.mpire.WorkerPool(n, **options)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def pool(kind):
    with make(kind) as p:
        yield p


# -- how items reach the function

def test_map_unpacks_tuples_lists_and_dicts_as_mpire_does(pool):
    assert pool.map(t.keywords, [(1, 2), [3, 4, 5], {"a": 1, "c": 2}, 7]) == [
        21, 543, 201, 7]


def test_imap_and_map_unordered_unpack_too(pool):
    items = [(i, i) for i in range(20)]
    assert list(pool.imap(t.add, items)) == [2 * i for i in range(20)]
    assert sorted(pool.imap_unordered(t.add, items)) == [2 * i for i in range(20)]
    assert sorted(pool.map_unordered(t.add, items)) == [2 * i for i in range(20)]


def test_strings_are_one_argument(pool):
    assert pool.map(len, ["abc", "de"]) == [3, 2]


def test_apply_async_takes_args_as_mpire_does(pool):
    assert pool.apply_async(t.keywords, (1, 2)).get(timeout=30) == 21
    assert pool.apply_async(t.square, 4).get(timeout=30) == 16
    assert pool.apply_async(t.keywords, (1,), {"c": 1}).get(timeout=30) == 101


def test_apply_async_callbacks(pool):
    got, errors = [], []
    pool.apply_async(t.square, (5,), callback=got.append).get(timeout=30)
    with pytest.raises(ValueError):
        pool.apply_async(t.fail_at, (3,), error_callback=errors.append).get(timeout=30)
    wait_for(lambda: got == [25] and len(errors) == 1, what="both callbacks")
    assert isinstance(errors[0], ValueError)


def test_numpy_results_are_concatenated_unless_asked_not_to(pool):
    out = pool.map(t.array_of, range(3))
    assert isinstance(out, np.ndarray) and out.tolist() == [0, 0, 1, 1, 2, 2]
    out = pool.map(t.array_of, range(3), concatenate_numpy_output=False)
    assert isinstance(out, list) and len(out) == 3


# -- per-call options

def test_per_map_worker_init_and_worker_exit_and_exit_results(pool):
    assert pool.get_exit_results() == []  # no worker_exit: no exit results at all
    assert set(pool.map(t.initialized, range(10), worker_init=t.set_state)) == {"init"}
    pool.map(t.square, range(10), worker_init=t.set_state, worker_exit=t.exit_value)
    assert set(pool.get_exit_results()) == {("exit", "init")}


def test_per_map_task_timeout(pool):
    with pytest.raises(TimeoutError):
        pool.map(t.sleep_for, [0.0, 5.0], task_timeout=0.5)
    assert pool.map(t.square, range(4)) == [0, 1, 4, 9]  # still usable


def test_per_map_worker_lifespan_replaces_workers(pool):
    pids = pool.map(t.pid, range(6), chunk_size=1, worker_lifespan=1)
    assert len(set(pids)) == 6


@pytest.mark.parametrize("options", [dict(max_tasks_active=2), dict(n_splits=3),
                                     dict(n_splits=3, chunk_size=None, iterable_len=30)])
def test_max_tasks_active_and_n_splits_keep_the_results(pool, options):
    assert pool.map(t.square, range(30), **options) == [x * x for x in range(30)]


def test_a_worker_exit_error_during_apply_async_reaches_the_caller_at_join(kind):
    p = make(kind)
    try:
        assert p.apply_async(t.square, (3,), worker_exit=t.exit_raises).get(timeout=30) == 9
        with pytest.raises(RuntimeError, match="worker_exit failed"):
            p.join()
    finally:
        p.terminate()


def test_a_worker_exit_error_during_map_raises(kind):
    with make(kind) as p:
        with pytest.raises(RuntimeError, match="worker_exit failed"):
            p.map(t.square, range(4), worker_exit=t.exit_raises)


# -- nbpar's own WorkerPool takes the same per-call options

def test_workerpool_apply_async_with_its_own_task_timeout():
    with nbpar.WorkerPool(2, keep_alive=True) as p:
        with pytest.raises(nbpar.TaskTimeoutError):
            p.apply_async(t.sleep_for, (5.0,), task_timeout=0.3).get(timeout=30)
        assert p.apply_async(t.sleep_for, (0.5,)).get(timeout=30) == 0.5  # the pool's: none


def test_workerpool_keep_alive_workers_are_replaced_for_a_call_with_other_hooks():
    with nbpar.WorkerPool(2, keep_alive=True) as p:
        first = set(p.map(t.pid, range(8), chunk_size=1))
        assert set(p.map(t.initialized, range(8))) == {None}
        assert set(p.map(t.initialized, range(8), worker_init=t.set_state)) == {"init"}
        assert not first & set(p.map(t.pid, range(8), chunk_size=1, worker_init=t.set_state))
        assert set(p.map(t.initialized, range(8))) == {None}  # the pool's own again


def test_workerpool_new_hooks_wait_for_the_running_call():
    with nbpar.WorkerPool(1, keep_alive=True) as p:
        running = p.apply_async(t.sleep_for, (0.5,))
        assert p.map(t.initialized, range(3), worker_init=t.set_state) == ["init"] * 3
        assert running.get(timeout=30) == 0.5


def test_workerpool_max_tasks_active_bounds_what_is_in_flight():
    with nbpar.WorkerPool(2, keep_alive=True) as p:
        seen = []
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                seen.append(sum(w.state == "busy" for w in p.report().workers))
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            assert p.map(t.slow_square, range(6), max_tasks_active=1) == [
                x * x for x in range(6)]
        finally:
            stop.set()
            watcher.join()
        assert max(seen) == 1


@pytest.mark.parametrize("options, error", [
    (dict(task_timeout=0), ValueError), (dict(worker_lifespan=0), ValueError),
    (dict(n_splits=-1), ValueError), (dict(worker_init=3), TypeError),
    (dict(no_such_option=1), TypeError),
])
def test_workerpool_bad_per_call_options(options, error):
    with nbpar.WorkerPool(1) as p:
        with pytest.raises(error):
            p.map(t.square, range(3), **options)


def test_workerpool_n_splits_sets_the_batches():
    from nbpar.call_options import CallOptions
    with nbpar.WorkerPool(1, keep_alive=True) as p:
        job = p._map_job(t.square, range(30), None, None, None, None, star=False)
        p._configure(job, CallOptions.parse({"n_splits": 3}, "map"))
        assert job.chunker.fixed == 10  # three batches of ten
        job = p._map_job(t.square, range(30), 4, None, None, None, star=False)
        p._configure(job, CallOptions.parse({"n_splits": 3}, "map"))
        assert job.chunker.fixed == 4  # a chunk_size given wins, as in MPIRE


def test_workerpool_async_maps_take_the_per_call_options_too():
    import asyncio

    async def run(p):
        got = await p.map_async(t.initialized, range(6), worker_init=t.set_state)
        with pytest.raises(TimeoutError):
            await p.map_async(t.sleep_for, [5.0], task_timeout=0.3)
        return got

    with nbpar.WorkerPool(2) as p:
        assert asyncio.run(run(p)) == ["init"] * 6

"""nbpar.Pool against multiprocessing.Pool: one suite, run on both.

Every case runs on multiprocessing's pool and on nbpar's; a difference is a failing test.
"""

import multiprocessing
import threading
import time

import pytest

import compat_tasks as t
import nbpar
from test_executor_compat import Watch
from waiting import wait_for

KINDS = ["multiprocessing", "nbpar"]
SPAWN = multiprocessing.get_context("spawn")


def make(kind, processes=2, *args, **kwargs):
    if kind == "multiprocessing":
        return multiprocessing.get_context("fork").Pool(processes, *args, **kwargs)
    return nbpar.Pool(processes, *args, **kwargs)


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def pool(kind):
    p = make(kind)
    yield p
    p.terminate()
    p.join()


# -- the maps

def test_map_keeps_input_order(pool):
    assert pool.map(t.square, range(300)) == [x * x for x in range(300)]
    assert pool.map(t.square, iter(range(10)), chunksize=3) == [x * x for x in range(10)]


def test_starmap_unpacks_items(pool):
    assert pool.starmap(t.add, [(i, 2 * i) for i in range(50)]) == [3 * i for i in range(50)]


def test_map_raises_the_items_exception(pool):
    with pytest.raises(ValueError, match="bad item 3"):
        pool.map(t.fail_at, range(6))


def test_map_async_get_callback_and_error_callback(pool):
    got, errors = [], []
    done = threading.Event()
    result = pool.map_async(t.square, range(10), callback=lambda r: (got.append(r), done.set()))
    assert result.get(timeout=30) == [x * x for x in range(10)]
    assert done.wait(10) and got == [[x * x for x in range(10)]]
    assert result.ready() and result.successful()
    failed = pool.map_async(t.fail_at, range(6),
                            error_callback=lambda e: (errors.append(e), done.set()))
    with pytest.raises(ValueError):
        failed.get(timeout=30)
    wait_for(lambda: errors, what="the error callback")
    assert isinstance(errors[0], ValueError) and not failed.successful()


def test_starmap_async(pool):
    assert pool.starmap_async(t.add, [(1, 2), (3, 4)]).get(timeout=30) == [3, 7]


def test_async_result_get_times_out_with_multiprocessing_timeout_error(pool):
    result = pool.apply_async(t.sleep_for, (1.0,))
    with pytest.raises(multiprocessing.TimeoutError):
        result.get(timeout=0.05)
    assert not result.ready()
    with pytest.raises(ValueError):
        result.successful()  # not ready yet
    assert result.get(timeout=30) == 1.0


def test_imap_streams_in_order_and_raises_at_the_failing_item(pool):
    assert list(pool.imap(t.square, range(100))) == [x * x for x in range(100)]
    got = []
    with pytest.raises(ValueError, match="bad item 3"):
        for value in pool.imap(t.fail_at, range(6)):
            got.append(value)
    assert got == [0, 1, 2]


def test_imap_unordered_gives_every_result(pool):
    assert sorted(pool.imap_unordered(t.square, range(100), chunksize=7)) == [
        x * x for x in range(100)]


def test_imap_next_with_timeout(pool):
    it = pool.imap(t.sleep_for, [0.5, 0.0])
    with pytest.raises(multiprocessing.TimeoutError):
        it.next(timeout=0.01)
    assert it.next(timeout=30) == 0.5 and next(it) == 0.0
    with pytest.raises(StopIteration):
        next(it)


def test_a_chunksize_below_one_is_refused(pool, kind):
    with pytest.raises(ValueError):
        list(pool.imap(t.square, range(4), chunksize=0))
    if kind == "nbpar":  # multiprocessing's map takes it and returns a wrong list; nbpar's
        with pytest.raises(ValueError, match="chunk_size"):  # refuses it, as its imap does
            pool.map(t.square, range(4), chunksize=0)


# -- single calls

def test_apply_and_apply_async_with_keywords(pool):
    assert pool.apply(t.echo, (1,), {"func": 2, "self": 3}) == ((1,), {"func": 2, "self": 3})
    got = []
    result = pool.apply_async(t.add, (2, 3), callback=got.append)
    assert result.get(timeout=30) == 5
    wait_for(lambda: got == [5], what="the callback")


def test_apply_async_error_callback(pool):
    errors = []
    result = pool.apply_async(t.fail_at, (3,), error_callback=errors.append)
    with pytest.raises(ValueError, match="bad item 3"):
        result.get(timeout=30)
    wait_for(lambda: errors, what="the error callback")
    assert isinstance(errors[0], ValueError)


# -- lifetime

def test_close_then_join_finishes_the_work_and_refuses_more(kind):
    p = make(kind)
    results = [p.apply_async(t.slow_square, (x,)) for x in range(6)]
    p.close()
    with pytest.raises(ValueError):
        p.apply_async(t.square, (1,))
    with pytest.raises(ValueError):
        p.map(t.square, range(3))
    p.join()
    assert [r.get(timeout=1) for r in results] == [x * x for x in range(6)]


def test_join_before_close_is_an_error(kind):
    p = make(kind)
    try:
        with pytest.raises(ValueError):
            p.join()
    finally:
        p.terminate()
        p.join()


def test_terminate_stops_the_workers_at_once(kind):
    p = make(kind)
    p.apply_async(t.sleep_for, (30,))
    start = time.monotonic()
    p.terminate()
    p.join()
    assert time.monotonic() - start < 10


def test_context_manager_gives_the_pool_and_terminates_it(kind):
    with make(kind) as p:
        assert p.map(t.square, range(5)) == [0, 1, 4, 9, 16]
    with pytest.raises(ValueError):
        p.map(t.square, range(3))
    p.join()


# -- the constructor

def test_initializer_runs_with_initargs(kind):
    with make(kind, 2, t.initialize, ("ready",)) as p:
        assert set(p.map(t.initialized, range(8))) == {"ready"}


def test_maxtasksperchild_replaces_workers(kind):
    with make(kind, 1, maxtasksperchild=1) as p:
        pids = [p.apply(t.pid) for _ in range(3)]
    assert len(set(pids)) == 3


def test_context_sets_how_workers_start(kind, monkeypatch):
    monkeypatch.setattr(t, "MARK", "parent")  # only a forked worker inherits this
    if kind == "multiprocessing":
        p = SPAWN.Pool(1)
    else:
        p = nbpar.Pool(1, context=SPAWN)
    with p:
        assert p.apply(t.read_mark) == "module"


@pytest.mark.parametrize("args, kwargs, error", [
    ((0,), {}, ValueError),
    ((-1,), {}, ValueError),
    ((1, 42), {}, TypeError),
    ((1,), {"maxtasksperchild": 0}, ValueError),
])
def test_bad_constructor_arguments(kind, args, kwargs, error):
    with pytest.raises(error):
        if kind == "multiprocessing":
            multiprocessing.get_context("fork").Pool(*args, **kwargs)
        else:
            nbpar.Pool(*args, **kwargs)


# -- no stale references

@pytest.mark.parametrize("how", ["apply_async", "map", "map_async", "imap"])
def test_a_finished_call_leaves_no_reference(pool, how):
    watch = Watch()

    def run():
        obj, item = watch(t.Big()), watch(t.Big(10))
        if how == "apply_async":
            results = [pool.apply_async(obj.method, (item,)).get(timeout=30)]
        elif how == "map":
            results = pool.map(obj.method, [item, item])
        elif how == "map_async":
            results = pool.map_async(obj.method, [item, item]).get(timeout=30)
        else:
            results = list(pool.imap(obj.method, [item, item]))
        assert [watch(r).data for r in results] == [item.data] * len(results)
    run()
    assert watch.all_freed(), f"the pool still holds what {how} was given or gave back"


# -- nbpar's own: the engine underneath

def test_nbpar_pool_names_the_failing_item_and_obeys_halt():
    with nbpar.Pool(2) as p:
        with pytest.raises(ValueError) as info:
            p.map(t.fail_at, range(6), chunksize=1)
        assert "index 3" in "".join(getattr(info.value, "__notes__", []))
        p.pool.halt()
        result = p.map_async(t.square, range(20))
        time.sleep(0.3)  # a halted pool starts nothing: there is no event to await
        assert not result.ready() and p.pool.report().status == "halted"
        p.pool.resume()
        assert result.get(timeout=30) == [x * x for x in range(20)]


def test_nbpar_pool_draws_a_progress_bar_when_asked(capsys):
    with nbpar.Pool(2, progress_bar=True) as p:
        assert p.map(t.square, range(50)) == [x * x for x in range(50)]
        assert p.starmap(t.add, [(1, 2)], progress_bar=False) == [3]
    err = capsys.readouterr().err
    assert "50/50" in err and err.count("1/1") == 0


def test_nbpar_pool_a_failing_initializer_fails_the_call_instead_of_hanging():
    # multiprocessing.Pool would restart its workers for ever and the map would never return
    with nbpar.Pool(1, t.broken_init) as p:
        with pytest.raises(OSError, match="no database here"):
            p.map(t.square, range(3))


def test_nbpar_pool_a_dead_worker_fails_the_call_instead_of_hanging():
    # multiprocessing.Pool would replace the worker and leave the call waiting for ever
    with nbpar.Pool(2) as p:
        with pytest.raises(nbpar.WorkerDiedError):
            p.apply_async(t.die).get(timeout=30)
        assert p.map(t.square, range(4)) == [0, 1, 4, 9]


def test_nbpar_a_stopped_pool_map_refuses_to_be_continued_from_its_report():
    # its results went to the caller as they came: a continuation would miss them
    with nbpar.Pool(2) as p:
        p.pool.halt()
        result = p.map_async(t.square, range(10))
        wait_for(lambda: p.pool.report().status == "halted", what="the halted map")
        p.pool.stop()
        with pytest.raises(nbpar.StoppedError) as info:
            result.get(timeout=30)
        assert "report=" not in str(info.value)  # the error does not offer what is refused
        with pytest.raises(ValueError, match="cannot be continued"):
            p.pool.map(t.square, report=info.value.report)

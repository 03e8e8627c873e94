"""backend="dask": the map family, single calls, errors, reports, shared objects and hooks,
on a real LocalCluster (conftest.py) whose workers every test leaves as it found them."""

from __future__ import annotations

import functools
import os
import threading
import time

import pytest

import nbpar

import waiting
from waiting import Background

pytestmark = pytest.mark.timeout(60)
wait_for = functools.partial(waiting.wait_for, timeout=30.0)


def square(x):
    return x * x


def add(x, y):
    return x + y


def nap(x, seconds=0.03):
    time.sleep(seconds)
    return x


def fail_on_7(x):
    if x == 7:
        raise KeyError(f"no {x}")
    return x


def where_am_i(x):
    return os.getpid()


@pytest.fixture
def pool(client, workers):
    with nbpar.WorkerPool(backend="dask", client=client, keep_alive=True) as p:
        yield p


# ----------------------------------------------------------------------------- maps

def test_every_map_call(pool):
    items = list(range(300))
    expected = [x * x for x in items]
    assert pool.n_jobs == 2  # the cluster's threads
    assert pool.map(square, items) == expected
    assert sorted(pool.map_unordered(square, items)) == expected
    assert list(pool.imap(square, iter(items))) == expected
    assert sorted(pool.imap_unordered(square, items)) == expected
    assert pool.starmap(add, [(x, 1) for x in items]) == [x + 1 for x in items]
    offset = 10
    assert pool.map(lambda x: x + offset, [1, 2]) == [11, 12]  # a closure, by value


def test_single_calls_and_executor(client, workers):
    with nbpar.WorkerPool(backend="dask", client=client) as pool:
        assert pool.apply_async(add, (2, 3)).get(timeout=30) == 5
        assert pool.submit(add, 4, y=5).result(timeout=30) == 9
        assert [pool.submit(square, i).result(timeout=30) for i in range(5)] == [0, 1, 4, 9, 16]
    with nbpar.Executor(backend="dask", client=client) as ex:
        assert list(ex.map(square, range(20))) == [x * x for x in range(20)]
        assert ex.submit(add, 1, 2).result(timeout=30) == 3
    assert client.status == "running"  # a client the user gave is the user's to close


def test_items_travel_in_batches_and_the_report_names_dask_workers(pool, workers):
    pool.map(nap, range(120))
    report = pool.report()
    assert report.status == "finished" and report.done == 120
    assert sum(w.tasks_done for w in report.workers) == 120
    assert all(w.busy > 0 for w in report.workers)
    assert {w.where for w in report.workers} <= set(workers)
    assert {w.where for w in report.workers} - {None}
    pids = set(pool.map(where_am_i, range(40)))
    assert pids <= set(workers.values())


# ----------------------------------------------------------------------------- errors

def test_error_keeps_its_type_and_remote_traceback(pool):
    with pytest.raises(KeyError) as info:
        pool.map(fail_on_7, range(50), chunk_size=4)
    err = info.value
    assert "fail_on_7" in str(err.__cause__) and "no 7" in str(err.__cause__)
    assert any("item 7 (index 7)" in note for note in err.__notes__)
    report = pool.report()
    assert report.status == "failed" and report.failed == 1
    assert report.errors[0].index == 7 and report.errors[0].type == "KeyError"
    assert pool.map(square, range(5)) == [0, 1, 4, 9, 16]  # still usable


def test_unpicklable_items_and_results(pool):
    with pytest.raises(nbpar.SerializationError, match="index 1"):
        pool.map(square, [1, threading.Lock()])
    with pytest.raises(nbpar.SerializationError, match="cannot be pickled"):
        pool.map(lambda x: threading.Lock() if x == 3 else x, range(6))
    assert pool.map(square, [3]) == [9]


def test_worker_output_reaches_the_caller(client, workers):
    lines = []
    with nbpar.WorkerPool(backend="dask", client=client,
                          on_output=lambda wid, stream, line: lines.append((wid, stream, line))
                          ) as pool:
        pool.map(lambda x: print(f"hello {x}"), range(4))
    assert sorted(line for _, stream, line in lines if stream == "stdout") == [
        f"hello {x}" for x in range(4)]
    assert {wid for wid, _, _ in lines} <= {0, 1}


# ----------------------------------------------------------------------------- shared objects

class Counted:
    """Counts how often it is unpickled in each process."""

    loads = 0

    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        return (_rebuild, (self.payload,))


def _rebuild(payload):
    Counted.loads += 1
    return Counted(payload)


def _loads():
    return Counted.loads


def test_shared_objects_are_scattered_once(client, workers):
    shared = Counted(list(range(1000)))

    def use(shared, x):
        return id(shared), len(shared.payload) + x

    with nbpar.WorkerPool(backend="dask", client=client, shared_objects=shared,
                          keep_alive=True) as pool:
        out = pool.map(use, range(400), chunk_size=5)  # 80 tasks
        out += pool.map(use, range(400), chunk_size=5)
    assert [v for _, v in out] == [1000 + x for x in range(400)] * 2
    assert len({ident for ident, _ in out}) <= 4  # one object per Dask worker (see below)
    # 80 tasks, yet each worker unpickled it once -- twice when Dask's broadcast happens to
    # copy it to a worker again (scatter, then replicate)
    assert max(client.run(_loads).values()) <= 2


def test_set_shared_objects(pool):
    pool.set_shared_objects({"k": 2})
    assert pool.map(lambda shared, x: shared["k"] * x, [1, 2]) == [2, 4]
    pool.set_shared_objects({"k": 3})
    assert pool.map(lambda shared, x: shared["k"] * x, [1, 2]) == [3, 6]


# ----------------------------------------------------------------------------- hooks and state

def test_init_exit_and_state_per_dask_worker(client, workers):
    def init(wid, state):
        state["init_pid"] = os.getpid()
        state["n"] = 0

    def task(wid, state, x):
        state["n"] += 1
        return wid, state["init_pid"] == os.getpid()

    def exit_(wid, state):
        return os.getpid(), state["n"]

    with nbpar.WorkerPool(backend="dask", client=client, pass_worker_id=True,
                          use_worker_state=True, worker_init=init, worker_exit=exit_,
                          keep_alive=True) as pool:
        first = pool.map(task, range(100), chunk_size=10)
        second = pool.map(task, range(100), chunk_size=10)
    assert {wid for wid, _ in first + second} <= {0, 1}
    assert all(ok for _, ok in first + second)
    exits = pool.get_exit_results()
    assert 1 <= len(exits) <= 2 and {pid for pid, _ in exits} <= set(workers.values())
    assert sum(n for _, n in exits) == 200  # one state per Dask worker, kept across maps


def test_without_keep_alive_each_map_inits_again(client, workers):
    inits = []

    def init():
        print("init")

    with nbpar.WorkerPool(backend="dask", client=client, worker_init=init,
                          worker_exit=lambda: "bye",
                          on_output=lambda wid, stream, line: inits.append(line)) as pool:
        pool.map(square, range(10), chunk_size=1)
        n_first = inits.count("init")
        pool.map(square, range(10), chunk_size=1)
    assert 1 <= n_first <= 2 and inits.count("init") > n_first
    assert set(pool.get_exit_results()) == {"bye"}


def test_worker_init_error_fails_the_map(client, workers):
    def init():
        raise RuntimeError("no database")

    with nbpar.WorkerPool(backend="dask", client=client, worker_init=init) as pool:
        with pytest.raises(RuntimeError, match="no database") as info:
            pool.map(square, range(10))
        assert any("worker_init" in note for note in info.value.__notes__)


# ----------------------------------------------------------------------------- signals

def test_halt_and_resume(pool):
    job = Background(lambda: pool.map(nap, range(150)))
    wait_for(lambda: pool.report().done >= 10)
    pool.halt()
    wait_for(lambda: pool.report().status == "halted")
    wait_for(lambda: all(w.state == "idle" for w in pool.report().workers))  # in flight: done
    done = pool.report().done
    time.sleep(0.5)
    assert pool.report().done == done < 150  # nothing new starts
    pool.resume()
    job.join(60)
    assert job.result == list(range(150))


def test_stop_then_continue_from_the_report(pool):
    job = Background(lambda: pool.map(nap, range(150)))
    wait_for(lambda: pool.report().done >= 10)
    pool.stop()
    job.join(30)
    err = job.error
    assert isinstance(err, nbpar.StoppedError)
    assert 10 <= err.report.done < 150 and err.report.pending
    assert pool.map(nap, report=err.report) == list(range(150))


# ----------------------------------------------------------------------------- options

def test_bad_options_are_named(client):
    with pytest.raises(ValueError, match="backend='dask'"):
        nbpar.WorkerPool(2, client=client)
    with pytest.raises(ValueError, match="start_method"):
        nbpar.WorkerPool(backend="dask", client=client, start_method="spawn")
    with pytest.raises(ValueError, match="unknown backend"):
        nbpar.WorkerPool(backend="spark")
    with pytest.raises(TypeError, match="client must be"):
        nbpar.WorkerPool(backend="dask", client=42)


def test_an_address_gives_the_pool_its_own_client(client, workers):
    address = client.scheduler.address
    with nbpar.WorkerPool(3, backend="dask", client=address) as pool:
        assert pool.n_jobs == 3
        assert pool.map(square, range(10)) == [x * x for x in range(10)]
        own = pool._backend.client
    assert own is not client and own.status == "closed"
    assert client.status == "running"

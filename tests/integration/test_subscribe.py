"""WorkerPool.subscribe: the signals a pool's callers send, told before the Boss has them,
and its report as it changes; `unsubscribe` ends both. Also WorkerPool.current, which finds
the pool of a worker thread (run_job's steering subscribes to it that way).

Tasks wait on an Event the test holds, so each state is reached on purpose, not by timing.
"""

import gc
import threading
import weakref

import pytest

import nbpar
from nbpar import Signal
from waiting import Background, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def gate():
    event = threading.Event()
    yield event
    event.set()


def signals_of(seen):
    return [told.signal for told in seen if isinstance(told, nbpar.SignalSent)]


def test_a_subscriber_hears_halt_resume_and_stop_before_the_boss_does(gate):
    seen, order = [], []

    with nbpar.WorkerPool(1, start_method="threading") as pool:
        def on_signal(told):
            seen.append(told)
            # on the caller's side, before the Boss has it: a report asked now predates it
            order.append(("before", told.signal, pool.report().pool_halted,
                          threading.current_thread() is threading.main_thread()))
            return lambda: order.append(("after", told.signal, pool.report().pool_halted))

        unsubscribe = pool.subscribe(on_signal, reports=False)
        job = Background(lambda: pool.map(lambda x: gate.wait(30) and x, range(3)))
        wait_for(lambda: pool.report().status == "running", what="the map running")
        pool.halt()
        pool.resume()
        pool.stop()
        gate.set()
        job.join()
        unsubscribe()
    assert isinstance(job.error, nbpar.StoppedError)
    assert signals_of(seen) == [Signal.HALT, Signal.RESUME, Signal.STOP]
    assert all(told.pool is pool and told.for_map is None for told in seen)
    assert order[:4] == [("before", Signal.HALT, False, True), ("after", Signal.HALT, True),
                         ("before", Signal.RESUME, True, True),
                         ("after", Signal.RESUME, False)]


def test_unsubscribe_ends_the_telling():
    seen = []
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        unsubscribe = pool.subscribe(seen.append, reports=False)
        pool.halt()
        unsubscribe()
        unsubscribe()  # a second call does nothing
        pool.resume()
        assert pool.report().pool_halted is False  # the RESUME reached the Boss all the same
    assert signals_of(seen) == [Signal.HALT]


def test_a_failing_subscriber_never_keeps_a_signal_from_the_boss():
    def broken(told):
        raise RuntimeError("a broken subscriber")

    seen = []
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        pool.subscribe(broken, reports=False)
        pool.subscribe(seen.append, reports=False)
        pool.halt()
        assert pool.report().pool_halted
        pool.resume()
    assert signals_of(seen)[:2] == [Signal.HALT, Signal.RESUME]


def test_close_and_terminate_are_told_too():
    seen = []
    pool = nbpar.WorkerPool(1, start_method="threading")
    pool.subscribe(seen.append, reports=False)
    pool.terminate()
    assert signals_of(seen) == [Signal.STOP_RIGHTNOW, Signal.END]
    assert not pool.is_alive()


def test_a_report_subscriber_sees_a_map_progress_and_finish():
    gates = [threading.Event() for _ in range(3)]
    reports = []

    def task(i):
        gates[i].wait(30)
        return i * 10

    with nbpar.WorkerPool(1, start_method="threading") as pool:
        unsubscribe = pool.subscribe(lambda told: reports.append(told.report), signals=False)
        wait_for(lambda: reports, what="the report as it is")
        assert reports[0].status == "idle"
        job = Background(lambda: pool.map(task, range(3), chunk_size=1))
        wait_for(lambda: any(r.status == "running" for r in reports), what="the map running")
        gates[0].set()
        wait_for(lambda: any(r.status == "running" and r.done == 1 for r in reports),
                 what="one item done, told")
        gates[1].set()
        gates[2].set()
        job.join()
        final = wait_for(lambda: [r for r in reports if r.status == "finished"],
                         what="the map's end, told")
        assert final[0].done == 3 and final[0].results == {0: 0, 1: 10, 2: 20}
        done = [r.done for r in reports if r.job_id == final[0].job_id]
        assert done == sorted(done)  # told in order
        unsubscribe()
        told = len(reports)
        pool.map(task, range(3))  # (every gate is open)
    assert len(reports) == told  # nothing after unsubscribe


def test_a_subscription_does_not_keep_its_pool_alive():
    pool = nbpar.WorkerPool(1, start_method="threading")
    heard = []  # (what is told names its pool: only the reports are kept here)
    pool.subscribe(lambda told: heard.append(getattr(told, "report", None)))
    wait_for(lambda: heard, what="the first report (the pool's report thread runs)")
    ref = weakref.ref(pool)
    del pool
    wait_for(lambda: gc.collect() is not None and ref() is None, timeout=5,
             what="the pool collected")


def test_current_is_the_pool_of_a_worker_thread():
    assert nbpar.WorkerPool.current() is None  # the caller's own thread
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        found = pool.map(lambda _: nbpar.WorkerPool.current() is pool, range(4), chunk_size=1)
    assert found == [True] * 4


def test_current_is_none_in_a_worker_process():
    with nbpar.WorkerPool(1, start_method="fork") as pool:
        assert pool.map(lambda _: nbpar.WorkerPool.current() is None, range(2)) == [True] * 2


def test_bad_callback_is_refused():
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        with pytest.raises(TypeError, match="callable"):
            pool.subscribe(42)


def test_the_report_counts_running_calls_and_set_shared_objects_refuses_them(gate):
    with nbpar.WorkerPool(1, start_method="threading", shared_objects=1) as pool:
        call = pool.apply_async(lambda shared, x: gate.wait(30) and x, (5,))
        wait_for(lambda: pool.report().running_maps == 1, what="the call counted")
        with pytest.raises(RuntimeError, match="while a map runs"):
            pool.set_shared_objects(2)
        gate.set()
        assert call.get(30) == 5
        wait_for(lambda: pool.report().running_maps == 0, what="the call ended")
        pool.set_shared_objects(2)
        assert pool.map(lambda shared, x: shared + x, [1]) == [3]

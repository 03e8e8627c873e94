"""The Boss's control pipe: every Signal acts on a map running in another thread."""

import threading
import time

import psutil
import pytest

import nbpar
import tasks
from waiting import Background, wait_for

METHODS = ["fork", "forkserver", "spawn", "threading"]


@pytest.mark.parametrize("method", METHODS)
def test_halt_starts_nothing_until_resume(method, tmp_path):
    path = str(tmp_path / "stamps")
    with nbpar.WorkerPool(2, start_method=method) as pool:
        job = Background(lambda: pool.map(lambda x: tasks.stamp(path, x, 0.05), range(60)))
        wait_for(lambda: pool.report().done >= 4)
        pool.halt()
        assert wait_for(lambda: pool.report().status == "halted")
        halted_at = time.time()
        wait_for(lambda: all(w.state != "busy" for w in pool.report().workers))
        done_while_halted = pool.report().done
        time.sleep(0.4)  # a window in which nothing may start
        late = [row for row in tasks.read_stamps(path) if row[1] > halted_at]
        assert late == [], f"tasks started while halted: {late}"
        assert pool.report().done == done_while_halted
        pool.resume()
        job.join()
    assert job.error is None and job.result == list(range(60))


@pytest.mark.parametrize("method", METHODS)
def test_stop_lets_running_tasks_finish_and_can_be_continued(method):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        job = Background(lambda: pool.map(tasks.nap, range(80)))
        wait_for(lambda: pool.report().done >= 4)
        pool.stop()
        job.join()
        err = job.error
        assert isinstance(err, nbpar.StoppedError)
        report = err.report
        assert report.status == "stopped" and 0 < report.done < 80
        assert report.failed == 0 and report.errors == ()
        assert sorted(list(report.results) + report.pending_indices) == list(range(80))
        assert pool.map(tasks.nap, report=report) == list(range(80))


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_stop_rightnow_kills_workers_within_a_second(method):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        job = Background(lambda: pool.map(tasks.nap, range(40), chunk_size=1))
        pids = wait_for(lambda: [w.pid for w in pool.report().workers
                                 if w.state == "busy" and w.pid])
        wait_for(lambda: pool.report().done >= 2)
        start = time.monotonic()
        pool.stop(now=True)
        job.join()
        gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)],
                                        timeout=1.0)
        assert not alive
        assert time.monotonic() - start < 2.0
        report = job.error.report
        assert isinstance(job.error, nbpar.StoppedError)
        assert report.failed == 0
        assert sorted(list(report.results) + report.pending_indices) == list(range(40))
        assert pool.map(tasks.nap, report=report) == list(range(40))


def test_signals_through_the_control_pipe_from_any_thread():
    with nbpar.WorkerPool(2, start_method="fork") as pool:
        job = Background(lambda: pool.map(tasks.nap, range(60)))
        wait_for(lambda: pool.report().done >= 2)
        sender = threading.Thread(target=pool.send, args=(nbpar.Signal.HALT,))
        sender.start()
        sender.join()
        assert wait_for(lambda: pool.report().status == "halted")
        assert isinstance(pool.send(nbpar.Signal.SEND_REPORT), nbpar.Report)
        pool.send(nbpar.Signal.RESUME)
        job.join()
        assert job.result == list(range(60))


def test_end_finishes_pending_work_then_stops_listening():
    pool = nbpar.WorkerPool(2, start_method="fork")
    job = Background(lambda: pool.map(tasks.nap, range(30)))
    wait_for(lambda: pool.report().done >= 1)
    pool.send(nbpar.Signal.END)
    job.join()
    assert job.result == list(range(30))
    pool.join(10)
    assert not pool._boss.thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        pool.map(tasks.square, range(3))


def test_stop_listening_ignores_later_signals():
    with nbpar.WorkerPool(2, start_method="fork") as pool:
        job = Background(lambda: pool.map(tasks.nap, range(30)))
        wait_for(lambda: pool.report().done >= 1)
        pool.send(nbpar.Signal.STOP_LISTENING)
        pool.send(nbpar.Signal.STOP)  # not heard: the map completes
        job.join()
        assert job.result == list(range(30))


def test_report_is_a_live_immutable_snapshot():
    with nbpar.WorkerPool(2, start_method="fork") as pool:
        job = Background(lambda: pool.map(tasks.nap, range(60)))
        early = wait_for(lambda: (lambda r: r if r.done >= 3 else None)(pool.report()))
        frozen = (early.done, dict(early.results), list(early.pending))
        job.join()
        assert (early.done, dict(early.results), list(early.pending)) == frozen
        final = pool.report()
    assert early.status == "running" and early.total == 60
    assert final.status == "finished" and final.done == 60 and final.pending == []
    assert final.results == {i: i for i in range(60)}
    assert final.elapsed > 0
    assert {w.id for w in early.workers} == {0, 1}
    busy = [w for w in early.workers if w.state == "busy"]
    assert all(w.pid and w.current_index is not None for w in busy)
    assert sum(w.tasks_done for w in final.workers) >= 60
    assert all(w.busy > 0 for w in final.workers if w.tasks_done)


def test_max_threads_scheduler_limits_concurrency(tmp_path):
    path = str(tmp_path / "stamps")
    with nbpar.WorkerPool(2, start_method="fork",
                          scheduler=nbpar.MaxThreadsScheduler(1)) as pool:
        pool.map(lambda x: tasks.stamp(path, x, 0.02), range(20))
    rows = sorted(tasks.read_stamps(path), key=lambda r: r[1])
    assert len(rows) == 20
    for before, after in zip(rows, rows[1:]):
        assert after[1] >= before[2] - 1e-3, "two tasks ran at once"

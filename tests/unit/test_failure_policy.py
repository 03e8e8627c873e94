"""retries and on_error in the Boss's pure state machine (nbpar/failures.py), by tables."""

from __future__ import annotations

import pytest

from nbpar import state as st
from nbpar.failures import make_policy
from nbpar.reports import TaskError
from tests.unit.test_state import Pool, _explode, finish, make_job, of, payload_of, result


def fail_head(pool, wid, n_ok=0):
    """The head batch of worker `wid` fails at its item n_ok (the ones before succeeded)."""
    batch = pool.head(wid)
    return pool.feed(st.BatchFailed(wid, batch.batch_id, [result(x) for x in batch.items[:n_ok]],
                                    payload_of(_explode, batch.items[n_ok]), 0.01))


def test_a_retried_item_and_the_rest_of_its_batch_run_again():
    pool = Pool(1, keep_alive=True)
    job = make_job(range(6), chunk_size=3)
    job.failure = make_policy(retries=1)
    pool.submit(job)
    pool.ready(0)
    out = fail_head(pool, 0, n_ok=1)               # item 0 done, item 1 failed, item 2 unrun
    assert of(out, st.FinishJob) == []
    assert [list(d.batch.indices) for d in of(out, st.Dispatch)] == [[1, 2, 3]]
    out = pool.play(out)
    fin = finish(out)
    assert fin.error is None
    assert fin.report.results == {i: result(i) for i in range(6)}
    assert [(e.index, e.attempt) for e in fin.report.retried] == [(1, 1)]
    assert fin.report.attempts == {1: 2}


def test_retries_run_out_and_the_map_fails():
    pool = Pool(1, keep_alive=True)
    job = make_job(range(3), chunk_size=1)
    job.failure = make_policy(retries=2)
    pool.submit(job)
    pool.ready(0)
    fail_head(pool, 0)
    fail_head(pool, 0)
    out = fail_head(pool, 0)
    fin = finish(out)
    assert isinstance(fin.error, ValueError)
    assert [(e.index, e.attempt) for e in fin.report.errors] == [(0, 3)]


def test_a_collected_error_takes_the_items_place_and_the_map_goes_on():
    pool = Pool(1, keep_alive=True)
    job = make_job(range(4), chunk_size=4)
    job.failure = make_policy(on_error="collect")
    pool.submit(job)
    pool.ready(0)
    out = pool.play(fail_head(pool, 0, n_ok=2))
    fin = finish(out)
    assert fin.error is None and fin.report.status == "finished"
    placeholder = job.ledger.ordered_results()[2]
    assert isinstance(placeholder, TaskError) and placeholder.type == "ValueError"
    assert job.ledger.ordered_results()[3] == result(3)
    assert fin.report.done == 3 and fin.report.failed == 1
    assert [e.index for e in fin.report.errors] == [2]


@pytest.mark.parametrize("how", ["died", "timeout"])
def test_a_dead_or_timed_out_worker_is_retried_once(how):
    pool = Pool(1, keep_alive=True, task_timeout=5 if how == "timeout" else None)
    job = make_job(range(2), chunk_size=1)
    job.failure = make_policy(retries=1)
    pool.submit(job, now=0.0)
    pool.ready(0, now=0.0)
    if how == "died":
        out = pool.died(0, -11, now=1.0)
    else:
        out = pool.feed(st.Tick(), now=5.0)        # play() carries out its KillWorker
    fin = finish(pool.play(out))
    assert fin.error is None
    assert fin.report.results == {0: result(0), 1: result(1)}
    assert [e.type for e in fin.report.retried] == [
        "WorkerDiedError" if how == "died" else "TaskTimeoutError"]

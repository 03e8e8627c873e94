"""retries=N and on_error="raise" | "collect" (nbpar/failures.py), with real workers.

Attempts are counted with marker files (one per run of an item), so the count holds across
processes and worker replacements.
"""

import os

import pytest

import nbpar
import tasks

METHODS = ["fork", "forkserver", "spawn", "threading"]
PROCESS_METHODS = ["fork", "forkserver", "spawn"]


def _attempt(directory, x) -> int:
    """Which run of item x this is (1, 2, ...), recorded on disk."""
    n = 1
    while True:
        try:
            os.close(os.open(os.path.join(directory, f"{x}-{n}"), os.O_CREAT | os.O_EXCL))
            return n
        except FileExistsError:
            n += 1


def flaky(directory, x):
    """Items divisible by 3 fail their first two runs with a ConnectionError."""
    if x % 3 == 0 and _attempt(directory, x) <= 2:
        raise ConnectionError(f"item {x}: the server hung up")
    return x * x


def dies_once(directory, x):
    if x == 5 and _attempt(directory, x) == 1:
        os._exit(3)
    return x * x


def hangs_once(directory, x):
    if x == 2 and _attempt(directory, x) == 1:
        import time
        time.sleep(30)
    return x * x


def fails_at(x, bad=(7, 150)):
    if x in bad:
        raise ValueError(f"bad item {x}")
    return x * x


def exits_at(x):
    if x == 150:
        os._exit(4)
    return x * x


@pytest.mark.parametrize("method", METHODS)
def test_retries_run_an_item_again_and_the_report_keeps_the_attempts(method, tmp_path):
    with nbpar.WorkerPool(2, start_method=method, shared_objects=str(tmp_path)) as pool:
        out = pool.map(flaky, range(12), retries=2, retry_on=ConnectionError)
        report = pool.report()
    assert out == [x * x for x in range(12)]
    assert report.status == "finished" and report.errors == ()
    assert report.attempts == {0: 3, 3: 3, 6: 3, 9: 3}
    assert sorted((e.index, e.attempt, e.type) for e in report.retried) == [
        (x, a, "ConnectionError") for x in (0, 3, 6, 9) for a in (1, 2)]
    assert "the server hung up" in report.retried[0].message


def test_too_few_retries_fail_the_map_with_the_last_attempt(tmp_path):
    with nbpar.WorkerPool(2, start_method="fork", shared_objects=str(tmp_path)) as pool:
        with pytest.raises(ConnectionError, match="hung up"):
            pool.map(flaky, range(12), retries=1, chunk_size=1)
        report = pool.report()
    assert report.status == "failed"
    assert all(e.type == "ConnectionError" and e.index % 3 == 0 for e in report.errors)
    assert any(e.attempt == 2 for e in report.errors)  # the one that failed the map
    assert all(e.attempt == 1 for e in report.retried)


def test_only_the_chosen_exceptions_are_retried(tmp_path):
    with nbpar.WorkerPool(2, start_method="fork") as pool:
        with pytest.raises(ValueError, match="bad item 7"):
            pool.map(fails_at, range(20), retries=3, retry_on=(ConnectionError, OSError))
        assert pool.report().retried == ()


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_a_dead_worker_is_retried_when_chosen(method, tmp_path):
    with nbpar.WorkerPool(2, start_method=method, shared_objects=str(tmp_path)) as pool:
        out = pool.map(dies_once, range(10), retries=1, retry_on=nbpar.WorkerDiedError)
        report = pool.report()
    assert out == [x * x for x in range(10)]
    assert [(e.index, e.type) for e in report.retried] == [(5, "WorkerDiedError")]


def test_a_timed_out_task_is_retried(tmp_path):
    with nbpar.WorkerPool(2, start_method="fork", shared_objects=str(tmp_path),
                          task_timeout=1.0) as pool:
        assert pool.map(hangs_once, range(4), retries=1) == [0, 1, 4, 9]
        assert [(e.index, e.type) for e in pool.report().retried] == [(2, "TaskTimeoutError")]


def test_apply_async_retries(tmp_path):
    with nbpar.WorkerPool(1, start_method="forkserver", shared_objects=str(tmp_path)) as pool:
        assert pool.apply_async(flaky, (3,), retries=2).get(timeout=30) == 9
        with pytest.raises(ConnectionError):
            pool.apply_async(flaky, (6,), retries=1).get(timeout=30)


@pytest.mark.parametrize("method", METHODS)
def test_collect_keeps_going_and_puts_each_error_in_place(method):
    n = 300  # tiny tasks: several items per batch, so a failure cuts a batch short
    with nbpar.WorkerPool(2, start_method=method) as pool:
        out = pool.map(fails_at, range(n), on_error="collect")
        report = pool.report()
        assert pool.map(fails_at, range(n), on_error="collect", default=-1)[7] == -1
    assert report.status == "finished"
    for x in range(n):
        if x in (7, 150):
            assert isinstance(out[x], nbpar.TaskError)
            assert out[x].index == x and out[x].type == "ValueError"
            assert f"bad item {x}" in out[x].message
        else:
            assert out[x] == x * x, x
    assert sorted(e.index for e in report.errors) == [7, 150]
    assert report.failed == 2 and report.done == n - 2 and report.pending == []


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_collect_a_dead_worker_and_rerun_the_rest_of_its_batch(method):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        out = pool.map(exits_at, range(400), on_error="collect", default=None)
        report = pool.report()
    assert out[150] is None
    assert [x for x in range(400) if out[x] != x * x] == [150]
    assert [e.type for e in report.errors] == ["WorkerDiedError"]


@pytest.mark.parametrize("ordered", [True, False])
def test_imap_collects_too(ordered):
    with nbpar.WorkerPool(2, start_method="fork") as pool:
        stream = (pool.imap if ordered else pool.imap_unordered)(
            fails_at, iter(range(200)), on_error="collect", default="failed")
        got = list(stream)
    if not ordered:
        assert sorted(map(str, got)) == sorted(map(str, [
            "failed" if x in (7, 150) else x * x for x in range(200)]))
    else:
        assert got == ["failed" if x in (7, 150) else x * x for x in range(200)]


def test_a_checkpoint_stores_no_placeholder(tmp_path):
    ck = tmp_path / "run.nbpar"
    with nbpar.WorkerPool(2, start_method="fork", shared_objects=str(tmp_path)) as pool:
        out = pool.map(flaky, range(7), checkpoint=ck, on_error="collect", default=None)
        assert out == [None, 1, 4, None, 16, 25, None]
        # the failed items were not recorded: the next run tries (only) them again
        out = pool.map(flaky, range(7), checkpoint=ck, on_error="collect", default=None)
        assert out == [None, 1, 4, None, 16, 25, None]  # second attempt: still failing
        assert pool.map(flaky, range(7), checkpoint=ck) == [x * x for x in range(7)]
    assert sorted(os.listdir(tmp_path)) == sorted(  # each failing item ran once a map
        ["run.nbpar"] + [f"{x}-{a}" for x in (0, 3, 6) for a in (1, 2, 3)])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(retries=-1), ValueError, "retries"),
    (dict(retries=1.5), ValueError, "retries"),
    (dict(retries=1, retry_on=5), TypeError, "retry_on"),
    (dict(retries=1, retry_on=(ValueError, "x")), TypeError, "retry_on"),
    (dict(on_error="ignore"), ValueError, "on_error"),
    (dict(default=0), ValueError, "collect"),
])
def test_bad_failure_options_are_clear_errors(kwargs, error, match):
    with nbpar.WorkerPool(1, start_method="threading") as pool:
        with pytest.raises(error, match=match):
            pool.map(tasks.square, range(3), **kwargs)

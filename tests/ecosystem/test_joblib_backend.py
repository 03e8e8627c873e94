"""joblib's "nbpar" backend: scikit-learn and plain joblib.Parallel give what loky gives, and
STOP ends a search with an error that counts the fits that finished."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.svm import SVC

import eco_tasks
import nbpar
from waiting import Background, wait_for

BACKENDS = ["loky", "nbpar"]


@pytest.fixture
def steer():
    runs = nbpar.register_joblib(progress_bar=False)
    yield runs
    runs.close()  # the workers kept between calls


@pytest.fixture(params=BACKENDS)
def backend(request, steer):
    with joblib.parallel_config(backend=request.param, n_jobs=2):
        yield request.param
    if request.param == "loky":  # loky keeps its workers for the next call: not here
        from joblib.externals.loky import get_reusable_executor
        get_reusable_executor().shutdown(wait=True)


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=200, n_features=8, random_state=0)


def _serial(call):
    with joblib.parallel_config(backend="sequential"):
        return call()


def test_parallel_results_equal_serial(backend):
    out = joblib.Parallel()(joblib.delayed(eco_tasks.cube)(i) for i in range(3000))
    assert out == [i ** 3 for i in range(3000)]


def test_parallel_generator_output(backend):
    gen = joblib.Parallel(return_as="generator_unordered")(
        joblib.delayed(eco_tasks.cube)(i) for i in range(200))
    assert sorted(gen) == [i ** 3 for i in range(200)]


def test_error_in_a_task_is_raised_as_is(backend):
    with pytest.raises(ValueError, match="bad item 7") as raised:
        joblib.Parallel(batch_size=1)(joblib.delayed(eco_tasks.fails_at)(i) for i in range(50))
    if backend == "nbpar":  # and the task is named
        assert "nbpar: raised by task 7 of this joblib call (in input order)" in \
            raised.value.__notes__


def test_grid_search_equals_serial(backend, data):
    X, y = data
    grid = {"C": [0.1, 1, 10], "gamma": [0.01, 0.1]}
    search = GridSearchCV(SVC(), grid, cv=3, n_jobs=2).fit(X, y)
    serial = _serial(lambda: GridSearchCV(SVC(), grid, cv=3).fit(X, y))
    assert search.best_params_ == serial.best_params_
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"],
                                  serial.cv_results_["mean_test_score"])


def test_cross_val_score_equals_serial(backend, data):
    X, y = data
    scores = cross_val_score(LogisticRegression(max_iter=500), X, y, cv=5, n_jobs=2)
    serial = _serial(lambda: cross_val_score(LogisticRegression(max_iter=500), X, y, cv=5))
    np.testing.assert_array_equal(scores, serial)


def test_random_forest_n_jobs_equals_serial(backend, data):
    X, y = data
    forest = RandomForestClassifier(n_estimators=30, random_state=0, n_jobs=2).fit(X, y)
    serial = _serial(lambda: RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y))
    np.testing.assert_array_equal(forest.predict_proba(X), serial.predict_proba(X))


def test_the_run_is_reported(steer, data):
    X, y = data
    with joblib.parallel_config(backend="nbpar", n_jobs=2):
        cross_val_score(LogisticRegression(max_iter=500), X, y, cv=4)
    report = steer.report()
    assert (report.status, report.done, report.total, report.failed) == ("finished", 4, 4, 0)
    assert len(report.workers) == 2


def test_stop_ends_a_search_naming_the_fits_that_finished(steer, data, tmp_path):
    X, y = data
    log = tmp_path / "fits.log"
    grid = {"c": list(range(20))}  # 20 candidates x 3 folds = 60 fits of 0.1 s on 2 workers
    search = GridSearchCV(eco_tasks.SlowCountingClassifier(delay=0.1, log=str(log)), grid,
                          cv=3, n_jobs=2)

    def fit():
        with joblib.parallel_config(backend="nbpar"):
            search.fit(X, y)

    running = Background(fit)
    wait_for(lambda: steer.current is not None and steer.current.is_alive()
             and steer.report().done >= 6, what="6 fits done")
    steer.stop()
    running.join()
    error = running.error
    assert isinstance(error, nbpar.StoppedError), error
    found = re.search(r"after (\d+) of its (\d+) dispatched tasks had finished", str(error))
    assert found, str(error)
    finished = int(found.group(1))
    ran = log.read_text().splitlines()
    assert finished == len(ran)  # every fit that ran, counted; none after the error
    assert 6 <= finished < 60
    assert error.report.status == "stopped" and error.report.done == finished
    assert steer.report().status == "stopped"
    assert not hasattr(search, "best_params_")


def test_halt_holds_the_fits_and_resume_finishes_the_search(steer, data, tmp_path):
    X, y = data
    log = tmp_path / "fits.log"
    grid = {"c": list(range(8))}  # 8 candidates x 3 folds = 24 fits of 0.1 s
    search = GridSearchCV(eco_tasks.SlowCountingClassifier(delay=0.1, log=str(log)), grid,
                          cv=3, n_jobs=2)

    def fit():
        with joblib.parallel_config(backend="nbpar"):
            return search.fit(X, y)

    running = Background(fit)
    wait_for(lambda: steer.current is not None and steer.current.is_alive()
             and steer.report().done >= 4, what="4 fits done")
    steer.halt()
    quiet = wait_for(lambda: (r := steer.report()).status == "halted" and not any(
        w.state == "busy" for w in r.workers) and r, what="halted, no fit running")
    fits = len(log.read_text().splitlines())
    time.sleep(0.5)  # a fit takes 0.1 s: five of them would have run by now
    assert len(log.read_text().splitlines()) == fits == quiet.done
    steer.resume()
    running.join()
    assert running.error is None, running.error
    pids = [line.split()[0] for line in log.read_text().splitlines()]
    assert len(pids) == 24 + 1 and pids[-1] == str(os.getpid())  # + the refit, here
    report = steer.report()
    assert (report.status, report.done) == ("finished", 24)
    assert search.best_params_ == {"c": 0}


def test_workers_are_kept_between_calls_until_close(steer):
    with joblib.parallel_config(backend="nbpar", n_jobs=2):
        joblib.Parallel()(joblib.delayed(eco_tasks.cube)(i) for i in range(10))
        # a worker that started for the first call is the same process for the second (one
        # may not have started yet: ten tiny tasks can all go to the first one up)
        first = {w.id: w.pid for w in steer.report().workers if w.pid is not None}
        assert first
        joblib.Parallel()(joblib.delayed(eco_tasks.cube)(i) for i in range(10))
        second = {w.id: w.pid for w in steer.report().workers}
        assert {i: second[i] for i in first} == first
        assert steer.report().status == "finished"
    pool = steer.current.pool
    steer.close()
    assert pool.report().status in ("finished", "idle")
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(eco_tasks.cube, 2)


def test_import_nbpar_imports_no_joblib_pandas_or_sklearn():
    code = ("import sys, nbpar; heavy = [m for m in ('joblib', 'pandas', 'sklearn') "
            "if m in sys.modules]; sys.exit(str(heavy) if heavy else 0)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr or run.stdout


def test_register_joblib_without_keep_workers_ends_the_workers_with_each_call():
    import psutil

    def nbpar_workers():
        found = []
        for proc in psutil.Process().children(recursive=True):
            try:
                if proc.name().startswith("nbpar-w"):  # their process title (titles.py)
                    found.append(proc)
            except psutil.NoSuchProcess:
                pass
        return found

    runs = nbpar.register_joblib(progress_bar=False, keep_workers=False)
    try:
        assert runs.keep_workers is False
        with joblib.parallel_config(backend="nbpar", n_jobs=2):
            out = joblib.Parallel()(joblib.delayed(eco_tasks.cube)(i) for i in range(50))
        assert out == [i ** 3 for i in range(50)]
        wait_for(lambda: not nbpar_workers(), what="no nbpar worker left after the call")
    finally:
        runs.close()

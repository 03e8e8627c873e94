"""Workloads where nbpar stands in for what data scientists already call: GridSearchCV's
joblib backend (against loky) and pandas' apply (against pandarallel and serial pandas)."""

from __future__ import annotations

import time

from .workloads import Result, _interleaved


def gridsearch(systems, repeat, n):
    """GridSearchCV(SVC) on a small dataset: 16 candidates × 5 folds = 80 fits, warm workers
    (loky keeps its workers between calls; so does the nbpar backend)."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    import nbpar

    X, y = make_classification(n_samples=600, n_features=20, random_state=0)
    grid = {"C": [0.1, 1, 10, 100], "gamma": [0.001, 0.01, 0.1, 1]}
    steer = nbpar.register_joblib(progress_bar=False)
    backends = {"joblib-loky": "loky", "nbpar-joblib": "nbpar"}
    scores = {}

    def measure(name):
        with joblib.parallel_config(backend=backends[name], n_jobs=n):
            start = time.perf_counter()
            search = GridSearchCV(SVC(), grid, cv=5).fit(X, y)
            elapsed = time.perf_counter() - start
        scores.setdefault(name, list(search.cv_results_["mean_test_score"]))
        return elapsed

    try:
        for name in systems:  # warm: workers started, scikit-learn imported in them
            measure(name)
        samples = _interleaved(systems, repeat, measure)
    finally:
        steer.close()
    assert all(s == scores[systems[0]] for s in scores.values()), "the searches disagree"
    return Result("gridsearch", "GridSearchCV(SVC), 80 fits of 600×20, warm workers", "s",
                  "joblib-loky", samples, "nbpar-joblib ≤ 1.0 × joblib-loky")


def pandas_apply(systems, repeat, n, rows=1_000_000):
    """df.apply(row_norm, axis=1) on a 1M-row frame: serial pandas, pandarallel and the nbpar
    accessor, each from a cold start (pandarallel starts its workers per call too)."""
    import numpy as np
    import pandas as pd

    from . import tasks

    df = pd.DataFrame(np.random.default_rng(0).random((rows, 3)), columns=list("abc"))
    expected = None
    skipped = {}
    calls = {}
    for name in systems:
        try:
            calls[name] = _pandas_system(name, n)
        except ImportError as exc:  # (a peer not installed)
            skipped[name] = f"{type(exc).__name__}: {exc}"
    present = [name for name in systems if name in calls]

    def measure(name):
        nonlocal expected
        start = time.perf_counter()
        out = calls[name](df, tasks.row_norm)
        elapsed = time.perf_counter() - start
        if expected is None:
            expected = out
        pd.testing.assert_series_equal(out, expected)
        return elapsed

    result = Result("pandas-apply", f"df.apply(row_norm, axis=1), {rows:,} rows × 3", "s",
                    "pandas" if "pandas" in present else present[0],
                    _interleaved(present, repeat, measure),
                    "nbpar faster than pandarallel")
    for name, why in skipped.items():
        result.target += f"; {name} not measured ({why})"
    return result


def _pandas_system(name, n):
    """A callable (df, func) -> df.apply(func, axis=1) by the system `name`."""
    if name == "pandas":
        return lambda df, func: df.apply(func, axis=1)
    if name == "pandarallel":
        _pandas_names_for_pandarallel()
        from pandarallel import pandarallel
        pandarallel.initialize(nb_workers=n, progress_bar=False, verbose=0)
        return lambda df, func: df.parallel_apply(func, axis=1)
    if name == "nbpar":
        import nbpar
        nbpar.register_pandas()
        return lambda df, func: df.nbpar.apply(func, axis=1, n_jobs=n, progress_bar=False)
    raise KeyError(name)


def _pandas_names_for_pandarallel():
    """pandarallel 1.6.5 (its newest release) imports two pandas classes by the names they had
    before pandas 3.0, `ExpandingGroupby` and `RollingGroupby` (now `...GroupBy`), and fails
    to import under pandas 3. Give the classes their old names too, so that pandarallel runs
    unchanged (its `parallel_apply` uses neither class)."""
    from pandas.core.window import expanding, rolling
    for module, old, new in ((expanding, "ExpandingGroupby", "ExpandingGroupBy"),
                             (rolling, "RollingGroupby", "RollingGroupBy")):
        if not hasattr(module, old) and hasattr(module, new):
            setattr(module, old, getattr(module, new))

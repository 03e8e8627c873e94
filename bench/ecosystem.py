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

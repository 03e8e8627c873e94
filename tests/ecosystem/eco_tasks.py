"""Functions and estimators the ecosystem tests run in workers (importable by name there)."""

from __future__ import annotations

import os
import time

from sklearn.base import BaseEstimator, ClassifierMixin


def cube(x):
    return x ** 3


def fails_at(x, bad=7):
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


class SlowCountingClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the majority class after `delay` seconds of fitting; each fit appends a line
    to `log` (when given), so a test can count the fits that really ran."""

    def __init__(self, delay=0.05, log=None, c=0):
        self.delay = delay
        self.log = log
        self.c = c

    def fit(self, X, y):
        time.sleep(self.delay)
        values, counts = zip(*sorted({v: list(y).count(v) for v in set(y)}.items()))
        self.classes_ = list(values)
        self.majority_ = values[counts.index(max(counts))]
        if self.log is not None:
            with open(self.log, "a") as out:
                out.write(f"{os.getpid()} {self.c}\n")
        return self

    def predict(self, X):
        return [self.majority_] * len(X)


def row_score(row):
    """A row function with some work in it (the pandas tests and notebook 07's kind)."""
    return float(row["a"]) * 2.0 + (1.0 if row["b"] > 0.5 else -1.0)


def slow_row(row, delay=0.002):
    time.sleep(delay)
    return row["a"] + 1


def add(x, y):
    return x + y


def nap_square(x, seconds=0.02):
    time.sleep(seconds)
    return x * x


def slow_double(group, delay=0.01):
    """A transform-like group function: the group's rows, doubled."""
    time.sleep(delay)
    return group[["a"]] * 2

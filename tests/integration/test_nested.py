"""Nested pools: a task may start a pool of its own, under every start method, inside a pool
of every start method (all 4 x 4 combinations). Workers are not daemonic to multiprocessing
(as with MPIRE's daemon=False), so a task may start processes; they still never outlive their
pool (conftest checks that no process is left behind)."""

import multiprocessing

import pytest

import nbpar

METHODS = ["fork", "forkserver", "spawn", "threading"]


def _square(x):
    return x * x


def inner_map(method):
    """A task that runs a pool of its own."""
    with nbpar.WorkerPool(2, start_method=method) as pool:
        squares = pool.map(_square, range(5))
    return method, squares, multiprocessing.current_process().daemon


@pytest.mark.parametrize("outer", METHODS)
def test_a_task_may_run_a_pool_of_every_start_method(outer):
    with nbpar.WorkerPool(1, start_method=outer) as pool:
        out = pool.map(inner_map, METHODS, chunk_size=1)
    assert [(m, s) for m, s, _ in out] == [(m, [0, 1, 4, 9, 16]) for m in METHODS]
    assert not any(daemon for _, _, daemon in out)  # the same rule under every start method

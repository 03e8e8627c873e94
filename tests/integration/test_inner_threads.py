"""inner_threads=: BLAS/OpenMP threads in each worker process, capped through threadpoolctl
and the environment; by default so that n_jobs x threads <= cores, as joblib does."""

import os

import pytest

import nbpar

np = pytest.importorskip("numpy")
threadpoolctl = pytest.importorskip("threadpoolctl")

PROCESS_METHODS = ["fork", "forkserver", "spawn"]


def blas_threads(_):
    import numpy  # noqa: F401 - loads BLAS (under spawn/forkserver, after the cap)
    from threadpoolctl import threadpool_info
    counts = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    return counts, os.environ.get("OMP_NUM_THREADS")


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_the_default_keeps_n_jobs_times_threads_within_the_cores(method):
    n_jobs = 2
    expected = max(1, (os.cpu_count() or 1) // n_jobs)
    with nbpar.WorkerPool(n_jobs, start_method=method) as pool:
        out = pool.map(blas_threads, range(4), chunk_size=1)
    assert all(counts == {expected} for counts, _ in out), out
    assert all(omp == str(expected) for _, omp in out), out


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_an_explicit_cap(method):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: the default is a single thread already")
    with nbpar.WorkerPool(1, start_method=method, inner_threads=1) as pool:  # default: cores
        ((counts, omp),) = pool.map(blas_threads, [0])
    assert counts == {1} and omp == "1"


def test_threads_are_not_capped():
    """Under threading a cap would act on the caller's own process: none is set."""
    before = blas_threads(0)
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        assert pool.map(blas_threads, [0]) == [before]


def test_an_explicit_cap_under_threading_is_a_clear_error():
    with pytest.raises(ValueError, match="inner_threads applies to worker processes"):
        nbpar.WorkerPool(1, start_method="threading", inner_threads=1)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_a_bad_cap_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="inner_threads"):
        nbpar.WorkerPool(1, start_method="fork", inner_threads=bad)


def test_a_library_loaded_between_two_fork_pools_is_capped_too():
    """The caller finds its BLAS libraries once before forking, and again once it has
    imported more: a library loaded after the first pool is capped in the second's workers."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: the default is a single thread already")
    with nbpar.WorkerPool(1, start_method="fork", inner_threads=1) as pool:
        ((before, _),) = pool.map(blas_threads, [0])
    pytest.importorskip("scipy.linalg")  # SciPy brings its own BLAS
    with nbpar.WorkerPool(1, start_method="fork", inner_threads=1) as pool:
        ((after, _),) = pool.map(blas_threads, [0])
    assert before == {1} and after == {1}
    libraries = {i["filepath"] for i in threadpoolctl.threadpool_info()
                 if i["user_api"] == "blas"}
    assert len(libraries) >= 2, libraries  # (so the second pool had a new one to cap)


def threads_at_start(_):
    import numpy  # noqa: F401 - (already loaded by the fork server, which preloads this module)
    return len(os.listdir(f"/proc/{os.getpid()}/task")), blas_threads(_)[0]


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_the_cap_starts_no_idle_blas_threads(method):
    """Setting OpenBLAS's count in a fresh fork starts its thread pool, whose threads spin
    idle for ~0.1 s, CPU taken from the tasks: the fork server sets the count before it forks,
    so its workers inherit it and start no thread."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: the default is a single thread already")
    with nbpar.WorkerPool(1, start_method=method, inner_threads=1) as pool:
        ((threads, counts),) = pool.map(threads_at_start, [0])
    assert counts == {1}
    assert threads == 1, f"{threads} threads in the worker"

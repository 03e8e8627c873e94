"""The crash table: every way a worker can fail, at every moment, under every process start
method -- each gives the right error naming the item and the cause within 2 s, leaves the pool
usable, and leaves no process or shared-memory segment behind (the conftest checks those)."""

import functools
import time

import pytest

import crashes
import nbpar

METHODS = ["fork", "forkserver", "spawn"]
ACTIONS = ["exception", "memoryerror", "exit", "segfault", "sigkill"]
DEATH = {"exit": "exit code 3", "segfault": "SIGSEGV(-11)", "sigkill": "SIGKILL(-9)"}


def expect(action, phase):
    """The error a caller must see, and a pattern its message must match."""
    if action in DEATH:
        return nbpar.WorkerDiedError, DEATH[action]
    if phase in ("arguments", "result", "caller"):  # the failure happens while (un)pickling
        return nbpar.SerializationError, "planned"
    return (ValueError, "planned failure") if action == "exception" else (
        MemoryError, "planned out-of-memory")


def check_usable(pool):
    assert pool.map(crashes.identity, range(6)) == list(range(6))


def run_map(pool, func, items):
    start = time.monotonic()
    try:
        pool.map(func, items, chunk_size=1)
    except BaseException as exc:  # noqa: BLE001
        return exc, time.monotonic() - start
    raise AssertionError("the map did not fail")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("phase", ["arguments", "task", "result"])
def test_failure_in_a_worker(method, action, phase):
    with nbpar.WorkerPool(2, start_method=method, keep_alive=True) as pool:
        if phase == "arguments":
            items = [0, 1, 2, crashes.HarmOnLoad(action), 4, 5]
            exc, took = run_map(pool, crashes.identity, items)
        else:
            func = crashes.harm_at_3 if phase == "task" else crashes.result_harm_at_3
            exc, took = run_map(pool, functools.partial(func, action), range(6))
        error, pattern = expect(action, phase)
        assert isinstance(exc, error), repr(exc)
        text = str(exc) + " ".join(getattr(exc, "__notes__", []))
        assert pattern in text or pattern in str(exc.__cause__), text
        assert "index 3" in text, text  # the very item is named
        assert took < 2.0
        check_usable(pool)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("action", ["exception", "memoryerror"])
def test_failure_while_the_caller_unpickles_a_result(method, action):
    with nbpar.WorkerPool(2, start_method=method, keep_alive=True) as pool:
        exc, took = run_map(pool, functools.partial(crashes.caller_harm_at_3, action), range(6))
        assert isinstance(exc, nbpar.SerializationError), repr(exc)
        text = str(exc) + " ".join(exc.__notes__)
        assert "could not be unpickled in the caller" in text and "index 3" in text
        assert took < 2.0
        check_usable(pool)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("action", ACTIONS)
def test_failure_in_worker_init(method, action):
    with nbpar.WorkerPool(2, start_method=method,
                          worker_init=functools.partial(crashes.harm_init, action)) as pool:
        exc, took = run_map(pool, crashes.identity, range(6))
        if action in DEATH:
            assert isinstance(exc, nbpar.WorkerDiedError) and "worker_init" in str(exc)
            assert DEATH[action] in str(exc)
        else:
            assert isinstance(exc, MemoryError if action == "memoryerror" else ValueError)
            assert any("worker_init" in note for note in exc.__notes__)
        assert took < 2.0


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("action", ACTIONS)
def test_failure_in_worker_exit(method, action):
    pool = nbpar.WorkerPool(2, start_method=method,
                            worker_exit=functools.partial(crashes.harm_exit, action))
    start = time.monotonic()
    with pytest.raises(BaseException) as info:
        pool.map(crashes.identity, range(6))
    exc = info.value
    if action in DEATH:
        assert isinstance(exc, nbpar.WorkerDiedError), repr(exc)
        assert "worker_exit" in str(exc) and DEATH[action] in str(exc)
    else:
        assert isinstance(exc, MemoryError if action == "memoryerror" else ValueError)
        assert any("worker_exit" in note for note in exc.__notes__)
    assert time.monotonic() - start < 2.0
    pool.close()
    pool.join()

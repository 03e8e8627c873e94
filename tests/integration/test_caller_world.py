"""Workers see the caller's world as it is when they start, under every process start method:
its environment, argv, working directory and sys.path, and its authkey (so proxies to a
multiprocessing manager travel as task arguments)."""

import multiprocessing
import sys

import pytest

import nbpar
import world_tasks

PROCESS_METHODS = ["fork", "forkserver", "spawn"]


@pytest.fixture
def changed_world(tmp_path, monkeypatch):
    """The caller's environment, argv, cwd and sys.path changed after the fork server started."""
    with nbpar.WorkerPool(1) as pool:  # the default's server exists before the change
        pool.map(world_tasks.world, range(1))
    extra = str(tmp_path / "extra-path")
    monkeypatch.setenv("NBPAR_TEST_WORLD", "set-in-a-cell")
    monkeypatch.setattr(sys, "argv", ["my-script.py", "first", "second"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [*sys.path, extra])
    return {"env": "set-in-a-cell", "argv": ["my-script.py", "first", "second"],
            "cwd": str(tmp_path), "extra": extra}


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_workers_see_the_callers_current_world(method, changed_world):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        seen = pool.map(world_tasks.world, range(4), chunk_size=1)
        assert pool.map(world_tasks.argv_item, [2]) == ["second"]  # no IndexError
    for w in seen:
        assert w["env"] == changed_world["env"]
        assert w["argv"] == changed_world["argv"]
        assert w["cwd"] == changed_world["cwd"]
        assert changed_world["extra"] in w["path"]


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_an_unset_variable_is_unset_in_the_workers(method, monkeypatch):
    monkeypatch.setenv("NBPAR_TEST_WORLD", "before")
    with nbpar.WorkerPool(1, start_method=method) as pool:
        assert pool.map(world_tasks.world, range(1))[0]["env"] == "before"
    monkeypatch.delenv("NBPAR_TEST_WORLD")
    with nbpar.WorkerPool(1, start_method=method) as pool:
        assert pool.map(world_tasks.world, range(1))[0]["env"] is None


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_workers_have_the_callers_authkey(method):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        keys = pool.map(world_tasks.authkey, range(2), chunk_size=1)
    assert keys == [bytes(multiprocessing.current_process().authkey)] * 2


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_a_manager_proxy_travels_as_a_task_argument(method):
    with multiprocessing.Manager() as manager:
        shared = manager.dict()
        with nbpar.WorkerPool(2, start_method=method) as pool:
            assert pool.starmap(world_tasks.put_in, [(shared, k) for k in range(6)]) == [True] * 6
        with nbpar.Executor(2, start_method=method) as ex:
            assert ex.submit(world_tasks.put_in, shared, 10).result(timeout=30) is True
        assert dict(shared) == {**{k: 2 * k for k in range(6)}, 10: 20}

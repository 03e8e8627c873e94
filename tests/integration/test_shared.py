"""Shared objects reach each worker once: copy-on-write, shared memory, locks and arrays."""

import multiprocessing
import os
import pickle

import numpy as np
import pytest

import nbpar
import tasks

PROCESS_METHODS = ["fork", "forkserver", "spawn"]


class CountsUnpickling:
    """Appends this process's pid to a file each time it is unpickled."""

    def __init__(self, path):
        self.path = path
        self.value = 5

    def __getitem__(self, key):
        return self.value

    def __setstate__(self, state):
        self.__dict__.update(state)
        with open(self.path, "a") as f:
            f.write(f"{os.getpid()}\n")


def unpickled_in(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(line) for line in f]


@pytest.mark.parametrize("method,expected", [("fork", 0), ("forkserver", 1), ("spawn", 2)])
def test_shared_objects_are_unpickled_once_per_worker_at_most(method, expected, tmp_path):
    path = str(tmp_path / "unpickles")
    shared = CountsUnpickling(path)
    with nbpar.WorkerPool(2, start_method=method, shared_objects=shared) as pool:
        out = pool.map(tasks.shared_value, range(300), chunk_size=1)
    assert out == [5 + x for x in range(300)]
    assert len(unpickled_in(path)) == expected  # never once per task


def test_fork_inherits_without_pickling():
    shared = {"value": 1, "unpicklable": tasks.Unpicklable()}
    with pytest.raises(TypeError):
        pickle.dumps(shared)
    with nbpar.WorkerPool(2, start_method="fork", shared_objects=shared) as pool:
        assert pool.map(tasks.shared_value, range(5)) == [1, 2, 3, 4, 5]


def test_threads_get_the_very_same_object():
    shared = {"value": 0}
    with nbpar.WorkerPool(2, start_method="threading", shared_objects=shared) as pool:
        assert set(pool.map(tasks.shared_id, range(20))) == {id(shared)}


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
@pytest.mark.parametrize("wrap", [lambda a: a, lambda a: (a,), lambda a: [a], lambda a: {"k": a}])
def test_numpy_arrays_travel_in_shared_memory(method, wrap):
    arr = np.arange(200_000, dtype=np.float64)
    shared = {"arr": wrap(arr)}

    def probe(shared, x):
        inner = shared["arr"]
        while not isinstance(inner, np.ndarray):
            inner = inner["k"] if isinstance(inner, dict) else inner[0]
        return tasks.array_in_shm({"arr": inner}, x)

    with nbpar.WorkerPool(2, start_method=method, shared_objects=shared) as pool:
        out = pool.map(probe, range(4), chunk_size=1)
    for mapping, total in out:
        assert mapping.startswith("/dev/shm/nbpar-"), mapping
        assert total == float(arr.sum())


@pytest.mark.parametrize("method", PROCESS_METHODS)
@pytest.mark.parametrize("lock", [True, False])
def test_multiprocessing_array_value_and_lock(method, lock):
    arr = multiprocessing.Array("i", 40, lock=lock)
    total = multiprocessing.Value("q", 0, lock=lock)
    guard = multiprocessing.Lock()
    with nbpar.WorkerPool(2, start_method=method, shared_objects=(arr, total, guard)) as pool:
        pool.map(tasks.fill_array, range(40), chunk_size=3)
    assert list(arr[:]) == [x * 10 for x in range(40)]
    assert total.value == sum(range(40))
    with guard:  # the caller's lock still works, and is the workers' lock
        pass


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_raw_array(method):
    raw = multiprocessing.RawArray("d", 16)
    with nbpar.WorkerPool(2, start_method=method, shared_objects=raw) as pool:
        pool.map(tasks.fill_raw, range(16))
    assert list(raw) == [x + 1.0 for x in range(16)]


@pytest.mark.parametrize("method", PROCESS_METHODS + ["threading"])
def test_set_shared_objects_takes_effect_with_kept_alive_workers(method):
    with nbpar.WorkerPool(2, start_method=method, shared_objects={"value": 1},
                          keep_alive=True) as pool:
        assert pool.map(tasks.shared_value, range(3)) == [1, 2, 3]
        pool.set_shared_objects({"value": 100})
        assert pool.map(tasks.shared_value, range(3)) == [100, 101, 102]


def test_unpicklable_shared_objects_under_spawn_fail_at_the_call():
    with pytest.raises(Exception, match="refuses to be pickled"):
        nbpar.WorkerPool(2, start_method="spawn", shared_objects=tasks.Unpicklable())


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_shared_array_travels_by_name_without_a_copy(method):
    import nbpar.shared as shared_mod
    data = nbpar.shared_array(np.arange(100_000, dtype=np.float64))

    def ours():
        return {n for n in os.listdir("/dev/shm") if n.startswith(f"nbpar-{os.getpid()}-")}
    before = ours()
    with nbpar.WorkerPool(2, start_method=method, shared_objects={"arr": data}) as pool:
        out = pool.map(tasks.array_in_shm, range(2), chunk_size=1)
        during = ours()
    owner = next(name for name, arr in shared_mod._owned_arrays.items() if arr is data)
    assert all(mapping == f"/dev/shm/{owner}" for mapping, _ in out)
    assert all(total == float(data.sum()) for _, total in out)
    assert len(during - before) == 1  # only the progress board: the array was not copied
    del data


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_large_plain_array_warns_and_points_to_shared_array(method, monkeypatch):
    import nbpar.shared as shared_mod
    monkeypatch.setattr(shared_mod, "LARGE_COPY", 2**20)  # 1 MB stands for a large array
    arr = np.ones(2**18)  # 2 MB
    with pytest.warns(UserWarning, match=r"2 MB of plain NumPy arrays.*2 copies.*"
                                         r"nbpar\.shared_array") as record:
        pool = nbpar.WorkerPool(2, start_method=method, shared_objects={"arr": arr})
    assert record[0].filename == __file__  # the user's line, not nbpar's
    with pool:
        assert pool.map(tasks.array_in_shm, range(2))[0][1] == float(arr.sum())
        with pytest.warns(UserWarning, match="shared_array"):
            pool.set_shared_objects({"arr": arr})


@pytest.mark.parametrize("method,how", [("fork", "plain"), ("forkserver", "shared_array"),
                                        ("spawn", "shared_array"), ("forkserver", "small")])
def test_no_warning_when_nothing_large_is_copied(method, how, monkeypatch):
    import warnings

    import nbpar.shared as shared_mod
    monkeypatch.setattr(shared_mod, "LARGE_COPY", 2**20)
    arr = np.ones(2**10 if how == "small" else 2**18)
    if how == "shared_array":
        arr = nbpar.shared_array(arr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with nbpar.WorkerPool(2, start_method=method, shared_objects={"arr": arr}) as pool:
            assert pool.map(tasks.array_in_shm, range(2))[0][1] == float(arr.sum())

"""The function, worker_init, worker_exit and the shared objects reach a worker as one: what
they share is one object in each worker. Under fork, all of them are inherited, not pickled;
what must be pickled and cannot be is a SerializationError naming what and where."""

import subprocess
import sys
import textwrap

import pytest

import bundle_tasks
import nbpar

PROCESS_METHODS = ["fork", "forkserver", "spawn"]


@pytest.mark.parametrize("method", PROCESS_METHODS)
@pytest.mark.parametrize("keep_alive", [False, True])
def test_a_bound_method_and_its_worker_exit_sibling_see_one_object(method, keep_alive):
    actor = bundle_tasks.Actor()
    docs = [f"doc{i:02d}" for i in range(40)]
    with nbpar.WorkerPool(2, start_method=method, worker_exit=actor.get_popular,
                          keep_alive=keep_alive) as pool:
        assert pool.map(actor.add_document, docs, chunk_size=3) == [5] * 40
    seen = pool.get_exit_results()
    assert len(seen) == 2
    assert sorted(d for docs_of_one in seen for d in docs_of_one) == docs  # each doc once
    assert actor.docs == []  # the caller's own actor is untouched


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_one_object_also_for_a_function_sent_to_workers_started_before_it(method):
    # kept-alive workers started by an earlier map: the method is pickled, not inherited
    actor = bundle_tasks.Actor()
    with nbpar.WorkerPool(2, start_method=method, worker_exit=actor.get_popular,
                          keep_alive=True) as pool:
        assert pool.map(abs, [-1, -2, -3, -4], chunk_size=1) == [1, 2, 3, 4]
        assert pool.map(actor.add_document, ["a", "b", "c", "d"], chunk_size=1) == [1] * 4
    assert sorted(d for docs in pool.get_exit_results() for d in docs) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_a_method_sees_the_same_object_as_the_hooks_with_shared_objects(method):
    counter = bundle_tasks.Counter()
    with nbpar.WorkerPool(2, start_method=method, shared_objects={"scale": 3},
                          worker_exit=counter.seen) as pool:
        assert pool.map(counter.count, range(30), chunk_size=2) == [3 * x for x in range(30)]
    assert sum(pool.get_exit_results()) == 30


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_a_shared_object_named_by_the_function_is_the_workers_shared_object(method):
    import functools
    shared = {"big": list(range(1000))}
    func = functools.partial(bundle_tasks.same_object, shared)
    with nbpar.WorkerPool(2, start_method=method, shared_objects=shared) as pool:
        assert pool.map(func, range(4), chunk_size=1) == [True] * 4


def _script(tmp_path, body):
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=120)


def test_under_fork_hooks_and_functions_of_main_are_inherited_not_pickled(tmp_path):
    done = _script(tmp_path, """
        import threading
        import nbpar

        LOCK = threading.Lock()          # cannot be pickled
        BIG = bytearray(50_000_000)      # would be pickled with the function, by value

        def init():
            with LOCK:
                pass

        def size(x):
            with LOCK:
                return len(BIG) + x

        if __name__ == "__main__":
            with nbpar.WorkerPool(2, start_method="fork", worker_init=init) as pool:
                print(pool.map(size, range(3)))
                print(pool.map(size, range(3)))   # the pool stays usable
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["[50000000, 50000001, 50000002]"] * 2


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
@pytest.mark.parametrize("part", ["worker_init", "worker_exit", "shared_objects"])
def test_what_cannot_be_pickled_is_named(method, part, tmp_path):
    done = _script(tmp_path, f"""
        import threading
        import nbpar

        LOCK = threading.Lock()

        def hook(*args):
            with LOCK:
                pass

        if __name__ == "__main__":
            options = dict(worker_init=hook) if {part!r} == "worker_init" else (
                dict(worker_exit=hook) if {part!r} == "worker_exit" else
                dict(shared_objects={{"lock": LOCK}}))
            try:
                nbpar.WorkerPool(2, start_method={method!r}, **options)
            except nbpar.SerializationError as exc:
                print("SerializationError:", exc)
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"SerializationError: {part} ("), done.stdout
    assert "lock" in done.stdout


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_an_unpicklable_function_is_named_as_func(method, tmp_path):
    done = _script(tmp_path, f"""
        import threading
        import nbpar

        LOCK = threading.Lock()

        def task(x):
            with LOCK:
                return x

        if __name__ == "__main__":
            with nbpar.WorkerPool(2, start_method={method!r}) as pool:
                try:
                    pool.map(task, range(3))
                except nbpar.SerializationError as exc:
                    print("SerializationError:", exc)
                print(pool.map(abs, [-1]))
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("SerializationError: func ("), done.stdout
    assert done.stdout.rstrip().endswith("[1]")


def test_shared_objects_the_fork_server_cannot_unpickle_fail_the_map_by_name(tmp_path):
    done = _script(tmp_path, """
        import nbpar

        class OnlyHere:   # unpickling it anywhere but in this process fails
            def __reduce__(self):
                return (_refuse, ())

        def _refuse():
            import os
            if os.getpid() != CALLER:
                raise RuntimeError("not in this process")
            return OnlyHere()

        def work(shared, x):
            return x

        if __name__ == "__main__":
            import os
            CALLER = os.getpid()
            with nbpar.WorkerPool(2, shared_objects=OnlyHere()) as pool:
                try:
                    pool.map(work, range(3))
                except nbpar.SerializationError as exc:
                    print("SerializationError:", exc)
            with nbpar.WorkerPool(2) as pool:      # the server serves the next pool
                print(pool.map(abs, [-2]))
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("SerializationError: the shared objects, worker_init and "
                               "worker_exit could not be unpickled in nbpar's fork server"), lines
    assert "not in this process" in lines[0]
    assert lines[-1] == "[2]"

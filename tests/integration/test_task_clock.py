"""task_timeout counts a task's own run time in the worker: starting the worker, unpickling
the function and importing its module come before the clock starts."""

import subprocess
import sys
import textwrap

import pytest

import nbpar
import tasks

PROCESS_METHODS = ["fork", "forkserver", "spawn"]


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_slow_import_of_the_functions_module_is_no_task_timeout(method, tmp_path):
    # A fresh interpreter: the module must not be imported anywhere yet (nor in a fork server).
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {__file__.rsplit('/', 1)[0]!r})
        import nbpar
        from slow_import_task import quick   # 1.5 s here; again in each worker
        if __name__ == "__main__":
            with nbpar.WorkerPool(2, start_method={method!r}, task_timeout=0.5) as pool:
                print(pool.map(quick, range(4)))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[1, 2, 3, 4]"


@pytest.mark.parametrize("method", [*PROCESS_METHODS, "threading"])
def test_an_instant_call_on_a_fresh_pool_is_no_timeout(method):
    # MPIRE's case: apply_async(..., task_timeout=0.1) on a fresh pool of 3
    with nbpar.WorkerPool(3, start_method=method, task_timeout=0.1) as pool:
        assert pool.apply_async(tasks.square, (3,)).get(timeout=30) == 9


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_a_task_that_overruns_is_still_timed_out(method):
    with nbpar.WorkerPool(1, start_method=method, task_timeout=0.3) as pool:
        with pytest.raises(nbpar.TaskTimeoutError, match="ran longer than task_timeout"):
            pool.map(tasks.sleep_at, [3])
        assert pool.map(tasks.square, [4]) == [16]


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_a_crash_in_set_up_under_task_timeout_is_named_as_such(method):
    import crashes
    with nbpar.WorkerPool(2, start_method=method, task_timeout=5) as pool:
        with pytest.raises(nbpar.WorkerDiedError, match=r"SIGKILL.*the set-up \(unpickling the "
                                                        r"function or the items\) of item"):
            pool.map(crashes.identity, [0, crashes.HarmOnLoad("sigkill"), 2])
        assert pool.map(tasks.square, [3]) == [9]

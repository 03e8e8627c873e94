"""A task's own subprocesses end with its worker when nbpar kills the worker.

Each worker process leads a process group of its own, and nbpar kills the whole group: a
task that ran `subprocess.run(["sleep", "30"])` leaves no orphaned `sleep` behind when it
times out, when STOP_RIGHTNOW kills it, or when Ctrl-C (SIGINT to the caller's process
group) ends the map. The `sleep` inherits the worker's ignored SIGINT, so without the group
kill nothing would end it. Orphans escape conftest's check (they are re-parented to init),
so these tests find the grandchildren while they run and follow them by pid.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import nbpar
from waiting import Background, wait_for

PROCESS_METHODS = ["fork", "forkserver", "spawn"]


def run_sleep(x):
    subprocess.run(["sleep", "30"])
    return x


def _sleeps(root: psutil.Process) -> list[psutil.Process]:
    out = []
    for proc in root.children(recursive=True):
        try:
            if proc.name() == "sleep":
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out


def _assert_gone(procs, seconds=3.0):
    _, alive = psutil.wait_procs(procs, timeout=seconds)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for proc in alive:  # no orphan outlives a failing test either
        proc.kill()
    assert not alive, f"grandchildren outlived their killed worker: {[p.pid for p in alive]}"


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_a_timed_out_task_takes_its_subprocess_with_it(method):
    with nbpar.WorkerPool(1, start_method=method, task_timeout=2.0) as pool:
        run = Background(lambda: pool.map(run_sleep, [1]))
        sleeps = wait_for(lambda: _sleeps(psutil.Process()), what="the task's sleep")
        run.join(20)
        assert isinstance(run.error, nbpar.TaskTimeoutError), run.error
        _assert_gone(sleeps)


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_stop_rightnow_takes_the_tasks_subprocesses_with_it(method):
    with nbpar.WorkerPool(2, start_method=method) as pool:
        run = Background(lambda: pool.map(run_sleep, range(4), chunk_size=1))
        sleeps = wait_for(lambda: len(_sleeps(psutil.Process())) == 2
                          and _sleeps(psutil.Process()), what="both tasks' sleeps")
        pool.stop(now=True)
        run.join(20)
        assert isinstance(run.error, nbpar.StoppedError), run.error
        _assert_gone(sleeps)


SCRIPT = textwrap.dedent("""
    import subprocess, sys
    import nbpar

    def run_sleep(x):
        subprocess.run(["sleep", "30"])
        return x

    if __name__ == "__main__":
        with nbpar.WorkerPool(2, start_method=sys.argv[1]) as pool:
            print("READY", flush=True)
            try:
                pool.map(run_sleep, range(4), chunk_size=1)
            except KeyboardInterrupt:
                print("INTERRUPTED", pool.report().status, flush=True)
        print("CLEAN", flush=True)
""")


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_ctrl_c_takes_the_tasks_subprocesses_with_it(method, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), method], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().startswith("READY")
        caller = psutil.Process(proc.pid)
        sleeps = wait_for(lambda: len(_sleeps(caller)) == 2 and _sleeps(caller),
                          what="both tasks' sleeps")
        start = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C and Jupyter's interrupt do
        out, err = proc.communicate(timeout=20)
        assert "INTERRUPTED stopped" in out and "CLEAN" in out, out + err
        assert time.monotonic() - start < 4.0
        _assert_gone(sleeps)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_sigkilled_caller_under_forkserver_takes_the_tasks_subprocesses_with_it(tmp_path):
    """Under forkserver (the default), the fork server outlives a SIGKILLed caller long
    enough to end each worker's whole group. (Under fork and spawn the workers die with the
    caller, PDEATHSIG, but nothing is left to end what their tasks started: README, Limits.)"""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), "forkserver"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().startswith("READY")
        caller = psutil.Process(proc.pid)
        sleeps = wait_for(lambda: len(_sleeps(caller)) == 2 and _sleeps(caller),
                          what="both tasks' sleeps")
        os.kill(proc.pid, signal.SIGKILL)  # a kernel restart
        proc.wait(10)
        _assert_gone(sleeps)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

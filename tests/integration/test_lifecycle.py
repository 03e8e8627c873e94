"""Interrupts, parent death, output forwarding, __main__ functions, and clean shutdown."""

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import nbpar
import tasks

PROCESS_METHODS = ["fork", "forkserver", "spawn"]

SCRIPT = textwrap.dedent("""
    import os, sys, time
    import nbpar

    def slow(x):            # defined in __main__: travels by value
        time.sleep(30)
        return x

    if __name__ == "__main__":
        pool = nbpar.WorkerPool(2, start_method=sys.argv[1])
        import threading
        def announce():
            while True:
                workers = [w for w in pool.report().workers if w.state == "busy" and w.pid]
                if len(workers) == 2:
                    print("PIDS", *[w.pid for w in workers], flush=True)
                    return
                time.sleep(0.02)
        threading.Thread(target=announce, daemon=True).start()
        try:
            pool.map(slow, range(10), chunk_size=1)
        except KeyboardInterrupt:
            r = pool.report()
            print("INTERRUPTED", r.status, r.done, len(r.pending), flush=True)
        pool.close(); pool.join()
        print("CLEAN", flush=True)
""")


def start_script(tmp_path, method):
    path = tmp_path / "script.py"
    path.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(path), method], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()
    assert line.startswith("PIDS"), line + proc.stderr.read()
    return proc, [int(p) for p in line.split()[1:]]


def gone_within(pids, seconds):
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=seconds)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_sigint_to_the_process_group_stops_workers_and_raises(method, tmp_path):
    proc, pids = start_script(tmp_path, method)
    start = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Jupyter's interrupt and Ctrl-C do
    out, err = proc.communicate(timeout=20)
    assert "INTERRUPTED stopped 0 10" in out, out + err
    assert "CLEAN" in out
    assert not gone_within(pids, 2.0)
    assert time.monotonic() - start < 4.0


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_sigkilled_parent_leaves_no_orphan(method, tmp_path):
    proc, pids = start_script(tmp_path, method)
    os.kill(proc.pid, signal.SIGKILL)  # a kernel restart
    proc.wait(10)
    assert not gone_within(pids, 2.0), "workers outlived their parent"
    proc.stdout.close()
    proc.stderr.close()


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_worker_output_is_forwarded_line_by_line_and_tagged(method):
    lines = []
    with nbpar.WorkerPool(1, start_method=method,
                          on_output=lambda wid, stream, line: lines.append((wid, stream, line))
                          ) as pool:
        assert pool.map(tasks.talk, range(3)) == [0, 1, 2]
    for x in range(3):
        assert (0, "stdout", f"print {x}") in lines
        assert (0, "stderr", f"stderr {x}") in lines
        assert (0, "stdout", f"fd1 {x}") in lines
        assert (0, "stdout", f"libc {x}") in lines


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_worker_prints_are_in_before_the_call_returns(method):
    """On a pool kept alive no final drain comes: what a task printed must be read before
    its result is handed back."""
    lines = []
    with nbpar.WorkerPool(2, start_method=method, keep_alive=True,
                          on_output=lambda wid, stream, line: lines.append((stream, line))
                          ) as pool:
        for x in range(20):
            assert pool.apply_async(tasks.talk, (x,)).get(timeout=10) == x
            assert ("stdout", f"print {x}") in lines and ("stderr", f"stderr {x}") in lines
            assert ("stdout", f"libc {x}") in lines
        assert pool.map(tasks.talk, range(20, 30), chunk_size=1) == list(range(20, 30))
        assert all(("stdout", f"fd1 {x}") in lines for x in range(20, 30))


def test_default_output_goes_to_the_callers_streams(capsys):
    with nbpar.WorkerPool(1, start_method="forkserver") as pool:
        pool.map(tasks.talk, [7])
    captured = capsys.readouterr()
    assert "[worker 0] print 7" in captured.out
    assert "[worker 0] stderr 7" in captured.err


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_functions_defined_in_main_work(method, tmp_path):
    script = tmp_path / "main_funcs.py"
    script.write_text(textwrap.dedent("""
        import sys, nbpar
        class Point:
            def __init__(self, x): self.x = x
        def shift(p): return Point(p.x + 1)
        if __name__ == "__main__":
            k = 3
            with nbpar.WorkerPool(2, start_method=sys.argv[1]) as pool:
                out = pool.map(shift, [Point(i) for i in range(5)])
                print([p.x for p in out], pool.map(lambda v: v * k, range(3)))
    """))
    out = subprocess.run([sys.executable, str(script), method], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "[1, 2, 3, 4, 5] [0, 3, 6]", out.stderr


@pytest.mark.parametrize("method", PROCESS_METHODS + ["threading"])
def test_a_dropped_pool_leaves_nothing_behind(method):
    pool = nbpar.WorkerPool(2, start_method=method, keep_alive=True)
    pids = set(pool.map(tasks.pid_of, range(10), chunk_size=1))
    boss = pool._boss.thread
    del pool
    gc.collect()
    boss.join(5)
    assert not boss.is_alive()
    if method != "threading":
        assert not gone_within(pids, 2.0)


@pytest.mark.parametrize("method", PROCESS_METHODS)
def test_close_join_leaves_no_worker(method):
    pool = nbpar.WorkerPool(2, start_method=method, keep_alive=True)
    pids = set(pool.map(tasks.pid_of, range(10), chunk_size=1))
    pool.close()
    pool.join()
    assert not gone_within(pids, 0.5)
    assert pool.report().status == "finished"


def test_terminate_kills_running_work():
    pool = nbpar.WorkerPool(2, start_method="fork")
    fut = pool.submit(tasks.nap, 1, 30)
    pid = None
    deadline = time.monotonic() + 10
    while pid is None and time.monotonic() < deadline:
        pid = next((w.pid for w in pool.report().workers if w.state == "busy"), None)
    start = time.monotonic()
    pool.terminate()
    assert time.monotonic() - start < 2.0
    assert not gone_within([pid], 1.0)
    assert fut.done()


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_shared_memory_is_unlinked_after_the_caller_is_killed(method, tmp_path):
    script = tmp_path / "shm_crash.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time, numpy as np, nbpar
        def total(shared, x):
            time.sleep(30)
            return float(shared.sum())
        if __name__ == "__main__":
            pool = nbpar.WorkerPool(1, start_method=sys.argv[1],
                                    shared_objects=np.ones(100_000))
            names = [n for n in os.listdir("/dev/shm") if n.startswith(f"nbpar-{os.getpid()}-")]
            print("SEGMENTS", *names, flush=True)
            pool.map(total, range(3))
    """))
    proc = subprocess.Popen([sys.executable, str(script), method], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    names = proc.stdout.readline().split()[1:]
    assert len(names) >= 2  # the array and the progress board
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/dev/shm/{n}") for n in names):
        time.sleep(0.05)  # multiprocessing's resource tracker unlinks what the dead caller left
    assert not [n for n in names if os.path.exists(f"/dev/shm/{n}")]


def test_import_stays_light():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, nbpar; print(' '.join(m for m in ('IPython', "
         "'ipywidgets', 'tqdm', 'dask', 'distributed', 'numpy', 'cloudpickle') "
         "if m in sys.modules))"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_import_defers_the_engine_yet_its_names_and_modules_are_reached_as_attributes():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, nbpar; held = 'nbpar.pool' in sys.modules; "
         "print(held, nbpar.WorkerPool.__name__, nbpar.pool.WorkerPool is nbpar.WorkerPool, "
         "nbpar.errors.WorkerDiedError.__name__, hasattr(nbpar, 'no_such_name'))"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "WorkerPool", "True", "WorkerDiedError", "False"]


def test_no_thread_outlives_a_closed_threading_pool():
    import threading
    before = {t for t in threading.enumerate() if t.name.startswith("nbpar")}
    with nbpar.WorkerPool(2, start_method="threading", keep_alive=True) as pool:
        pool.map(tasks.square, range(100))
        assert [t for t in threading.enumerate() if t.name.startswith("nbpar-worker")]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left = {t for t in threading.enumerate() if t.name.startswith("nbpar")} - before
        if not left:
            break
        time.sleep(0.01)
    assert not left, left

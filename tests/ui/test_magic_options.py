"""%parallel_map's pool options in an InteractiveShell: --timeout, --checkpoint, --progress,
--keep-alive and --pool (their bad values are in test_magics.py's usage table)."""

import os

import psutil
import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbpar
from waiting import wait_for

pytestmark = pytest.mark.timeout(120)

DEFINE = '''
import os, threading, time
calls = []
broken = set()
gate = threading.Event()

def square(x):
    return x * x

def sleeper(x):
    time.sleep(x)
    return x

def flaky(x):
    calls.append(x)
    if x in broken:
        raise ValueError(f"broken {x}")
    return x

def gated(x):
    calls.append(x)
    gate.wait(30)
    return x

def whoami(x):
    return os.getpid()
'''


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbpar")
    shell.run_cell(DEFINE)
    yield shell
    shell.run_line_magic("unload_ext", "nbpar")


@pytest.fixture
def magic(ip):
    made = ip.magics_manager.registry["ParallelMagics"]
    yield made
    made.release_kept()
    made.stopped = made.stopped_checkpoint = None


def pm(ip, line):
    return ip.run_line_magic("parallel_map", line)


@pytest.mark.parametrize("own_pool", [False, True])
def test_timeout_fails_a_task_that_runs_too_long(ip, own_pool):
    """In the magic's pool and in one given with --pool (there, as the map's own timeout)."""
    line = "--timeout 0.5 sleeper [0, 30]"
    if own_pool:
        ip.user_ns["p"] = nbpar.WorkerPool(1)
    try:
        with pytest.raises(nbpar.TaskTimeoutError) as info:
            pm(ip, ("--pool p " if own_pool else "-n 1 ") + line)
        assert "30" in str(info.value)
        if own_pool:
            assert ip.user_ns["p"].map(ip.user_ns["square"], [3]) == [9]  # still open
    finally:
        if own_pool:
            ip.user_ns["p"].terminate()


def test_checkpoint_runs_only_what_is_missing(ip, magic, tmp_path):
    path = tmp_path / "a run.ckpt"
    line = f"--start-method threading -n 1 --chunk-size 1 --checkpoint '{path}' flaky range(6)"
    ip.user_ns["calls"].clear()
    ip.user_ns["broken"].update({3})
    with pytest.raises(ValueError, match="broken 3"):
        pm(ip, line)
    assert path.exists()
    ip.user_ns["broken"].clear()
    ip.user_ns["calls"].clear()
    assert pm(ip, line) == list(range(6))
    again = ip.user_ns["calls"]
    assert 3 in again and not {0, 1, 2} & set(again), again


def test_a_stopped_checkpointed_map_continues_with_its_checkpoint(ip, magic, tmp_path):
    path = tmp_path / "stopped.ckpt"
    ip.user_ns["gate"].clear()
    ip.user_ns["calls"].clear()
    handle = pm(ip, f"--start-method threading -n 2 --chunk-size 1 --checkpoint {path} "
                    f"--background gated range(8)")
    wait_for(lambda: len(ip.user_ns["calls"]) >= 2, timeout=10)
    handle.stop()
    ip.user_ns["gate"].set()
    with pytest.raises(nbpar.StoppedError, match="--continue gated"):
        handle.result(timeout=30)
    done_before = list(ip.user_ns["calls"])
    assert magic.stopped_checkpoint == (str(path), range(8))
    ip.user_ns["calls"].clear()
    assert pm(ip, "--start-method threading --continue gated") == list(range(8))
    assert not set(done_before) & set(ip.user_ns["calls"])  # the checkpoint had those
    assert magic.stopped is None and magic.stopped_checkpoint is None


@pytest.mark.parametrize("progress, bar", [(None, True), ("widget", True), ("text", True),
                                           ("none", False)])
def test_progress_in_a_terminal(ip, capfd, progress, bar):
    """text is tqdm's bar (widget falls back to it outside a notebook); none draws nothing."""
    option = f"--progress {progress} " if progress else ""
    assert pm(ip, f"--start-method threading {option}square [1, 2, 3]") == [1, 4, 9]
    drawn = "3/3" in capfd.readouterr().err
    assert drawn == bar


def test_pool_runs_there_and_stays_open(ip, magic):
    pool = ip.user_ns["p"] = nbpar.WorkerPool(2, start_method="threading")
    try:
        sink = pool.on_output
        assert pm(ip, "--pool p square range(5)") == [0, 1, 4, 9, 16]
        assert pool.report().total == 5  # the map ran in that pool
        assert pool.on_output == sink  # the terminal's sink was given back
        ip.run_cell("def boom(x):\n    raise ValueError(x)\n")
        with pytest.raises(ValueError):
            pm(ip, "--pool p boom [1]")
        assert pool.map(ip.user_ns["square"], [4]) == [16]  # an error did not close it
        ip.user_ns["gate"].clear()
        handle = pm(ip, "--pool p --chunk-size 1 --background gated range(6)")
        wait_for(lambda: handle.report().status == "running", timeout=10)
        handle.stop()
        ip.user_ns["gate"].set()
        with pytest.raises(nbpar.StoppedError) as info:
            handle.result(timeout=30)
        assert "continue it with %parallel_map --pool p --continue gated" in str(info.value)
        assert pm(ip, "--pool p --continue gated") == list(range(6))
    finally:
        pool.close()
        pool.join()


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_keep_alive_keeps_the_workers_for_the_next_map(ip, magic):
    first = pm(ip, "-n 1 --keep-alive whoami [0]")
    assert first != [os.getpid()]  # a worker process
    kept = magic.kept[1]
    assert pm(ip, "-n 1 --keep-alive whoami [0]") == first  # the same worker, kept
    assert magic.kept[1] is kept and not kept._closed
    assert pm(ip, "-n 1 whoami [0]") != first  # without --keep-alive: a pool of its own
    assert magic.kept[1] is kept
    pm(ip, "-n 2 --keep-alive whoami [0, 1]")  # other settings replace the kept pool
    assert kept._closed and magic.kept[1] is not kept
    wait_for(lambda: _gone(first[0]), timeout=10, what="the replaced pool's worker to end")
    magic.release_kept()
    assert magic.kept is None


def test_a_view_that_fails_leaves_no_pool(ip, magic, monkeypatch):
    """If the view cannot be shown, the map never starts and the magic's pool is closed."""
    from nbpar.ui import magics

    made = []
    real = magics.WorkerPool

    def recording_pool(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    def broken_view(run, live):
        raise ImportError("no ipywidgets here")

    monkeypatch.setattr(magics, "WorkerPool", recording_pool)
    monkeypatch.setattr(magics.MapRun, "_show", broken_view)
    with pytest.raises(ImportError, match="no ipywidgets"):
        pm(ip, "-n 1 square [1]")
    (pool,) = made
    assert pool._closed and not pool._boss.thread.is_alive()

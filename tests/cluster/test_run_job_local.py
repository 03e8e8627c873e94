"""run_job's common path, run here (run_locally=True): results, JobError, timeouts, touch_only,
and the steering of jobs by pool signals. No grid engine needed: the local job goes through
the same start / wait / outcome / raise path and the same pause / unpause / stop steering.
"""

import functools
import importlib.util
import os
import pickle
import subprocess
import sys
import threading
import time

import psutil
import pytest

import nbpar
import waiting
from nbpar import cluster
from waiting import Background

wait_for = functools.partial(waiting.wait_for, timeout=15.0)


def job_processes(tag):
    """The processes of local jobs whose command mentions `tag` (the shell and its children)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.cmdline()[:1] == ["/bin/sh"] and "nbpar-job-" in " ".join(proc.cmdline()):
                script = proc.cmdline()[1]
                if tag in open(script).read():
                    found.append(proc)
                    found.extend(proc.children(recursive=True))
        except (psutil.Error, OSError, IndexError):
            pass
    return found


def all_in_state(procs, state):
    try:
        return bool(procs) and all(p.status() == state for p in procs)
    except psutil.NoSuchProcess:
        return False


# ----------------------------------------------------------------------------- results

def test_returns_stdout_and_stderr_with_quoting_intact():
    out, err = nbpar.run_job("""printf '%s|' "a  b" 'c"d' "$((2 + 3))"; echo oops >&2""",
                             run_locally=True)
    assert out == 'a  b|c"d|5|'
    assert err == "oops\n"


def test_runs_in_the_callers_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out, _ = nbpar.run_job("pwd; echo x > made_here", run_locally=True)
    assert out.strip() == str(tmp_path)
    assert (tmp_path / "made_here").read_text() == "x\n"


def test_exit_5_raises_job_error_with_status_and_output():
    with pytest.raises(nbpar.JobError) as info:
        nbpar.run_job("echo partial; echo 'it broke' >&2; exit 5", run_locally=True)
    err = info.value
    assert (err.exit_status, err.signal, err.aborted, err.timed_out) == (5, None, False, False)
    assert (err.stdout, err.stderr) == ("partial\n", "it broke\n")
    assert "exited with status 5" in str(err) and "it broke" in str(err)
    assert isinstance(err, nbpar.NbparError)
    again = pickle.loads(pickle.dumps(err))  # it crosses process boundaries whole
    assert (again.exit_status, again.stdout, again.stderr, str(again)) == (
        5, err.stdout, err.stderr, str(err))


def test_a_job_killed_by_a_signal_raises():
    with pytest.raises(nbpar.JobError) as info:
        nbpar.run_job("echo before; kill -KILL $$; echo after", run_locally=True)
    err = info.value
    assert (err.exit_status, err.signal, err.stdout) == (None, "SIGKILL", "before\n")
    assert "killed by SIGKILL" in str(err)


def test_timeout_terminates_the_job_and_everything_it_started():
    start = time.monotonic()
    with pytest.raises(nbpar.JobError) as info:
        nbpar.run_job("echo started; sleep 30 & sleep 30", run_locally=True, timeout=0.5)
    assert time.monotonic() - start < 5
    err = info.value
    assert err.timed_out and err.aborted and err.stdout == "started\n"
    assert job_processes("sleep 30") == []  # the background sleep went with its group


def test_touch_only_touches_and_runs_nothing(tmp_path):
    old, new, marker = tmp_path / "old", tmp_path / "new", tmp_path / "ran"
    old.write_text("kept")
    os.utime(old, (1_000_000, 1_000_000))
    result = nbpar.run_job(f"touch {marker}", touch_only=[old, str(new)])
    assert result == ("", "")
    assert not marker.exists()
    assert new.exists() and old.read_text() == "kept" and old.stat().st_mtime > 1_000_000
    assert nbpar.run_job("exit 1", touch_only=str(tmp_path / "one")) == ("", "")


@pytest.mark.parametrize("kwargs", [dict(cmd=""), dict(cmd=["ls"]), dict(cmd="true", timeout=0),
                                    dict(cmd="true", timeout=-1)])
def test_bad_arguments_are_refused(kwargs):
    with pytest.raises(ValueError):
        nbpar.run_job(run_locally=True, **kwargs)


def test_logger_hears_of_the_job(caplog):
    import logging
    logger = logging.getLogger("nbpar.test.run_job")
    with caplog.at_level(logging.INFO, logger=logger.name):
        nbpar.run_job("true", run_locally=True, logger=logger)
    assert any("submitted" in r.getMessage() for r in caplog.records)
    assert any("ended" in r.getMessage() for r in caplog.records)


def _fail_at(i):
    return nbpar.run_job(f"echo {i}; exit {3 if i == 2 else 0}", run_locally=True)[0]


def test_job_error_reaches_the_caller_from_a_process_worker():
    with nbpar.WorkerPool(2, start_method="forkserver") as pool:
        with pytest.raises(nbpar.JobError) as info:
            pool.map(_fail_at, range(4))
    assert info.value.exit_status == 3 and info.value.stdout == "2\n"


# ----------------------------------------------------------------------------- steering

def test_the_steering_finds_the_pool_of_a_worker_thread():
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        found = pool.map(lambda _: nbpar.WorkerPool.current() is pool, range(4), chunk_size=1)
    assert found == [True] * 4


def test_the_steering_subscribes_to_a_pool_once_a_task_starts_a_job():
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        assert pool not in cluster._steering.followed
        pool.map(lambda i: nbpar.run_job("true", run_locally=True), range(4), chunk_size=1)
        assert pool in cluster._steering.followed
        heard = []
        pool.subscribe(heard.append, reports=False)
        pool.halt()
        assert pool in cluster._steering.halted  # the steering heard it too
        pool.resume()
        assert pool not in cluster._steering.halted
    assert [told.signal for told in heard][:2] == [nbpar.Signal.HALT, nbpar.Signal.RESUME]


def _two_jobs_halted(pool, name, script):
    """A map of two local jobs running `script` on a threading pool, then HALT: the map
    (in the background) and the jobs' processes, once all of them are stopped."""
    tag = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    cmd = f": {tag}; {script}"
    job = Background(lambda: pool.map(
        lambda i: nbpar.run_job(cmd, run_locally=True)[0], range(2), chunk_size=1))
    procs = wait_for(lambda: len(job_processes(tag)) == 4 and job_processes(tag),
                     what="two jobs (a shell and a sleep each) running")
    pool.halt()
    wait_for(lambda: all_in_state(procs, psutil.STATUS_STOPPED), what="jobs stopped")
    return job, procs


def test_halt_suspends_running_jobs_and_resume_continues(tmp_path):
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        job, procs = _two_jobs_halted(pool, "halt", "echo start; sleep 1.5; echo end")
        assert job.thread.is_alive()
        pool.resume()
        wait_for(lambda: not any(p.status() == psutil.STATUS_STOPPED for p in procs
                                 if p.is_running()), what="jobs continued")
        job.join()
    assert job.error is None and job.result == ["start\nend\n"] * 2


def test_a_job_asked_for_while_halted_starts_only_after_resume(tmp_path):
    marker = tmp_path / "ran"
    release = threading.Event()

    def task(_):
        release.wait(10)  # the task is running when the pool is halted
        return nbpar.run_job(f"echo ran > {marker}; echo ok", run_locally=True)[0]

    with nbpar.WorkerPool(1, start_method="threading") as pool:
        job = Background(lambda: pool.map(task, [0]))
        wait_for(lambda: pool.report().workers[0].state == "busy", what="the task running")
        pool.halt()
        release.set()
        held = wait_for(lambda: [j for j in cluster._steering.live() if j.paused],
                        what="the job registered as held")
        assert not held[0].started and not marker.exists()
        pool.resume()
        job.join()
    assert job.result == ["ok\n"] and marker.read_text() == "ran\n"


def test_stop_after_halt_lets_the_suspended_jobs_finish(tmp_path):
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        job, procs = _two_jobs_halted(pool, "stop", "sleep 1; echo done")
        pool.stop()  # STOP: running tasks finish -- so their jobs must run again
        job.join()
    if job.error is not None:  # a stopped map reports what finished
        assert isinstance(job.error, nbpar.StoppedError)
        assert job.error.report.results == {0: "done\n", 1: "done\n"}
    else:
        assert job.result == ["done\n"] * 2


def test_stop_rightnow_kills_running_jobs_and_they_count_as_pending():
    tag = f"kill-{os.getpid()}-{time.monotonic_ns()}"
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        job = Background(lambda: pool.map(
            lambda i: nbpar.run_job(f": {tag}; sleep 60", run_locally=True), range(3),
            chunk_size=1))
        wait_for(lambda: len(job_processes(tag)) == 4, what="two jobs running")
        start = time.monotonic()
        pool.stop(now=True)
        job.join(10)
        wait_for(lambda: job_processes(tag) == [], timeout=5, what="the jobs killed")
        assert time.monotonic() - start < 5
    assert isinstance(job.error, nbpar.StoppedError)
    assert job.error.report.failed == 0
    assert sorted(job.error.report.pending_indices) == [0, 1, 2]


def test_signals_reach_only_the_jobs_of_their_own_pool():
    tag_a, tag_b = (f"{p}-{os.getpid()}-{time.monotonic_ns()}" for p in "ab")
    with nbpar.WorkerPool(1, start_method="threading") as a, \
            nbpar.WorkerPool(1, start_method="threading") as b:
        job_a = Background(lambda: a.map(
            lambda i: nbpar.run_job(f": {tag_a}; sleep 1", run_locally=True), [0]))
        job_b = Background(lambda: b.map(
            lambda i: nbpar.run_job(f": {tag_b}; sleep 1", run_locally=True), [0]))
        procs_a = wait_for(lambda: len(job_processes(tag_a)) == 2 and job_processes(tag_a))
        procs_b = wait_for(lambda: len(job_processes(tag_b)) == 2 and job_processes(tag_b))
        a.halt()
        wait_for(lambda: all_in_state(procs_a, psutil.STATUS_STOPPED), what="a's job stopped")
        assert not any(p.status() == psutil.STATUS_STOPPED for p in procs_b if p.is_running())
        job_b.join()
        assert job_b.error is None
        a.resume()
        job_a.join()
    assert job_a.error is None


# ----------------------------------------------------------------------------- DRMAA, lightly

def test_import_nbpar_does_not_import_drmaa():
    code = "import sys, nbpar; nbpar.run_job; sys.exit('drmaa' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0


def test_without_the_engines_environment_the_error_says_what_is_missing():
    if importlib.util.find_spec("drmaa") is None:  # importing it here would load libdrmaa
        pytest.skip("the drmaa package is not installed (the cluster extra)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DRMAA_LIBRARY_PATH", "LD_PRELOAD", "SGE_ROOT")}
    code = ("import nbpar\n"
            "try:\n    nbpar.run_job('true')\n"
            "except nbpar.cluster.DrmaaUnavailable as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    assert "DRMAA_LIBRARY_PATH" in out.stdout, out.stdout + out.stderr
    library = "/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0"
    if os.path.exists(library):  # present but loaded without the preload: the TLS failure
        env["DRMAA_LIBRARY_PATH"] = library
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=60)
        assert "LD_PRELOAD=" in out.stdout, out.stdout + out.stderr

"""Resumable maps: a checkpoint records results durably and a rerun does only what is missing."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import nbpar
import tasks
from waiting import Background, wait_for


def logged_square(log, x):
    with open(log, "a") as f:
        f.write(f"{x}\n")
    return x * x


def flaky_square(marker, x):
    """Fails at item 7 until the marker file exists."""
    if x == 7 and not os.path.exists(marker):
        raise RuntimeError("not yet")
    return x * x


def executed(log):
    with open(log) as f:
        return [int(line) for line in f]


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn", "threading"])
def test_a_finished_checkpoint_runs_nothing_again(method, tmp_path):
    log, ck = str(tmp_path / "log"), tmp_path / "run.nbpar"
    with nbpar.WorkerPool(2, start_method=method, shared_objects=log) as pool:
        assert pool.map(logged_square, range(50), checkpoint=ck) == [x * x for x in range(50)]
        assert sorted(executed(log)) == list(range(50))
        assert pool.map(logged_square, range(50), checkpoint=ck) == [x * x for x in range(50)]
    assert sorted(executed(log)) == list(range(50))  # nothing ran the second time


def test_after_an_error_only_the_missing_items_run(tmp_path):
    marker, ck = str(tmp_path / "marker"), tmp_path / "run.nbpar"
    with nbpar.WorkerPool(2, start_method="fork", shared_objects=marker) as pool:
        with pytest.raises(RuntimeError, match="not yet"):
            pool.map(flaky_square, range(40), checkpoint=ck, chunk_size=1)
        stored = pool.report().done
        open(marker, "w").close()
        assert pool.map(flaky_square, range(40), checkpoint=ck) == [x * x for x in range(40)]
        assert pool.report().done == 40
    assert stored >= 1


def test_after_a_stop_the_map_is_completed(tmp_path):
    log, ck = str(tmp_path / "log"), tmp_path / "run.nbpar"

    def slow(log, x):
        time.sleep(0.02)
        return logged_square(log, x)

    with nbpar.WorkerPool(2, start_method="fork", shared_objects=log) as pool:
        job = Background(lambda: pool.map(slow, range(100), checkpoint=ck))
        wait_for(lambda: pool.report().done >= 10)
        pool.stop()
        job.join(20)
        assert isinstance(job.error, nbpar.StoppedError)
        first = set(executed(log))
        assert pool.map(slow, range(100), checkpoint=ck) == [x * x for x in range(100)]
    again = executed(log)[len(first):]
    assert not set(again) & first  # what was stored did not run again
    assert sorted(first | set(again)) == list(range(100))


SCRIPT = textwrap.dedent("""
    import os, sys, time, nbpar
    def work(log, x):
        time.sleep(0.01)
        with open(log, "a") as f:
            f.write(f"{x}\\n")
        return x * 3
    if __name__ == "__main__":
        log, ck = sys.argv[1], sys.argv[2]
        with nbpar.WorkerPool(2, shared_objects=log) as pool:
            out = pool.map(work, range(300), checkpoint=ck, chunk_size=5)
        print("RESULT", sum(out), len(out), flush=True)
""")


def test_a_killed_process_resumes_from_its_checkpoint(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    log, ck = str(tmp_path / "log"), str(tmp_path / "run.nbpar")
    proc = subprocess.Popen([sys.executable, str(script), log, ck], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(log) and len(executed(log)) >= 120, timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, as a kernel restart does
        proc.wait(10)
    proc.stdout.close()
    before = len(executed(log))
    out = subprocess.run([sys.executable, str(script), log, ck], capture_output=True, text=True,
                         timeout=120)
    assert f"RESULT {3 * sum(range(300))} 300" in out.stdout, out.stderr
    import sqlite3
    rows = sqlite3.connect(ck).execute("SELECT idx FROM results").fetchall()
    assert sorted(i for (i,) in rows) == list(range(300))  # every result exactly once
    total_runs = len(executed(log))
    assert total_runs - before < 300  # the rerun did not start over


def test_a_checkpoint_for_other_items_or_function_is_refused(tmp_path):
    ck = tmp_path / "run.nbpar"
    with nbpar.WorkerPool(2, start_method="fork") as pool:
        pool.map(tasks.square, range(10), checkpoint=ck)
        with pytest.raises(ValueError, match="other items"):
            pool.map(tasks.square, range(11), checkpoint=ck)
        with pytest.raises(ValueError, match="another function"):
            pool.map(tasks.pid_of, range(10), checkpoint=ck)


def test_a_result_that_cannot_be_stored_is_a_clear_error(tmp_path):
    with nbpar.WorkerPool(2, start_method="threading") as pool:
        with pytest.raises(nbpar.SerializationError, match="index 4.*checkpoint"):
            pool.map(tasks.return_unpicklable, range(10), checkpoint=tmp_path / "c.nbpar")

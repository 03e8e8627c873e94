"""run_job against a real single-node Son of Grid Engine (see conftest.py): results, JobError,
the same outcomes as run_locally, a map of grid jobs, and pool signals reaching the jobs --
asserted from what the engine itself reports (qstat), by awaiting conditions."""

import functools
import itertools
import time

import pytest

import gridtasks
import nbpar
import waiting

# the engine changes state in seconds, and each look at it (qstat) starts a process
wait_for = functools.partial(waiting.wait_for, timeout=30.0, every=0.1)

_names = itertools.count()


def names(n):
    """Job names unique within the session (SGE shows them in qstat)."""
    return [f"nbt{next(_names)}" for _ in range(n)]


def slots(grid) -> int:
    import subprocess
    out = subprocess.run(["qstat", "-f", "-q", "all.q"], env=grid.env, capture_output=True,
                         text=True, timeout=20, check=True).stdout
    return sum(int(line.split()[2].split("/")[2]) for line in out.splitlines()
               if line.startswith("all.q@"))


@pytest.fixture(autouse=True)
def no_job_left(grid):
    """Every test leaves the engine without a job of its own."""
    yield
    try:
        wait_for(lambda: not grid.jobs(), timeout=30, what="no job left in the engine")
    except AssertionError:
        left = grid.jobs()
        grid.delete_all()
        pytest.fail(f"jobs left in the engine after the test: {left}", pytrace=False)


def test_success_returns_stdout_and_stderr(grid):
    out, err = grid.call(gridtasks.run,
                         """printf '%s|' "a  b" 'c"d' "$JOB_ID"; echo oops >&2""")
    parts = out.split("|")
    assert parts[:2] == ["a  b", 'c"d'] and parts[2].isdigit()  # quoting intact, a grid job
    assert err == "oops\n"


def test_exit_5_raises_job_error_with_status_and_output(grid):
    with pytest.raises(nbpar.JobError) as info:
        grid.call(gridtasks.run, "echo partial; echo 'it broke' >&2; exit 5")
    err = info.value
    assert (err.exit_status, err.signal, err.aborted) == (5, None, False)
    assert (err.stdout, err.stderr) == ("partial\n", "it broke\n")
    assert err.job_id.isdigit() and "exited with status 5" in str(err)


def test_a_job_killed_by_a_signal_raises(grid):
    with pytest.raises(nbpar.JobError) as info:
        grid.call(gridtasks.run, "echo before; kill -KILL $$")
    assert (info.value.signal, info.value.exit_status, info.value.stdout) == (
        "SIGKILL", None, "before\n")


@pytest.mark.parametrize("cmd", ["""printf '%s\\n' "x  y" && echo e >&2""",
                                 "echo out; echo err >&2; exit 5", "echo o; kill -KILL $$"])
def test_run_locally_gives_what_the_grid_gives(grid, cmd):
    on_grid, here = grid.call(gridtasks.both_ways, cmd)
    assert on_grid == here


def test_timeout_terminates_the_grid_job(grid):
    start = time.monotonic()
    with pytest.raises(nbpar.JobError) as info:
        grid.call(gridtasks.run, "echo started; sleep 60", timeout=3)
    assert info.value.timed_out and info.value.aborted
    assert time.monotonic() - start < 20


def test_touch_only_submits_nothing(grid, tmp_path):
    target = tmp_path / "out.txt"
    assert grid.call(gridtasks.run, "exit 1", touch_only=[str(target)]) == ("", "")
    assert target.exists() and not grid.jobs()


def test_a_threading_pool_maps_over_grid_jobs(grid):
    n = 4
    job_names = names(n)
    grid.call(gridtasks.start_map, "m", "job",
              [(f"echo {i} $JOB_ID", name) for i, name in enumerate(job_names)], n)
    status, results = grid.call(gridtasks.finish_map, "m")
    assert status == "ok"
    assert [r.split()[0] for r in results] == ["0", "1", "2", "3"]
    assert len({r.split()[1] for r in results}) == n  # four distinct grid jobs


def test_halt_holds_queued_and_suspends_running_jobs_until_resume(grid):
    k = slots(grid)
    job_names = names(k + 1)  # one more than the engine runs at once: one waits queued
    cmds = [f"sleep 3; echo {i}" for i in range(k + 1)]
    grid.call(gridtasks.start_map, "h", "job", list(zip(cmds, job_names)), k + 1)
    before = wait_for(lambda: (lambda js: sorted(js.values()) == ["qw"] + ["r"] * k and js)(
        grid.jobs()), what=f"{k} jobs running and one queued")
    running = [n for n, state in before.items() if state == "r"]
    (queued,) = [n for n, state in before.items() if state == "qw"]

    grid.call(gridtasks.send, "h", "HALT")
    states = wait_for(lambda: (lambda js: all("s" in js.get(n, "") for n in running)
                               and js.get(queued) == "hqw" and js)(grid.jobs()),
                      what="running jobs suspended, the queued one held")
    assert all("h" in states[n] for n in running)  # held too: they cannot restart by themselves

    grid.call(gridtasks.send, "h", "RESUME")
    wait_for(lambda: not any("h" in s or "s" in s for s in grid.jobs().values()),
             what="every job released and resumed")
    assert grid.call(gridtasks.finish_map, "h") == ("ok", [f"{i}\n" for i in range(k + 1)])


def test_a_job_submitted_by_a_halted_pool_starts_held(grid, tmp_path):
    started, gate = tmp_path / "started", tmp_path / "gate"
    (name,) = names(1)
    grid.call(gridtasks.start_map, "g", "gated_job",
              [("echo late", name, str(started), str(gate))], 1)
    wait_for(started.exists, what="the task running")
    grid.call(gridtasks.send, "g", "HALT")
    gate.touch()
    wait_for(lambda: grid.jobs().get(name) == "hqw", what="the job submitted on hold")
    grid.call(gridtasks.send, "g", "RESUME")
    assert grid.call(gridtasks.finish_map, "g") == ("ok", ["late\n"])


def test_stop_rightnow_terminates_the_grid_jobs(grid):
    k = slots(grid)
    job_names = names(k + 1)
    grid.call(gridtasks.start_map, "s", "job",
              [("sleep 120", name) for name in job_names], k + 1)
    wait_for(lambda: sum(s == "r" for s in grid.jobs().values()) == k, what="jobs running")
    start = time.monotonic()
    grid.call(gridtasks.send, "s", "STOP_RIGHTNOW")
    outcome = grid.call(gridtasks.finish_map, "s")
    wait_for(lambda: not grid.jobs(), timeout=15, what="every job gone from the engine")
    assert time.monotonic() - start < 15
    kind, exc_type, _, status, done, failed, pending = outcome
    assert (kind, exc_type, status, done, failed) == ("error", "StoppedError", "stopped", 0, 0)
    assert pending == list(range(k + 1))  # interrupted tasks count as pending, not failed

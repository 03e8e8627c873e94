"""In `ps` and `top`, nbpar's processes say what they are: the fork server and each worker
under fork, forkserver and spawn, read back from the process table with psutil as those
tools read it. Whole titles need setproctitle (the test extra has it); the 15-byte name is
set without it, and a title never stops a process from starting."""

import os
import re
import subprocess
import sys

import psutil
import pytest

import nbpar
import tasks
from waiting import wait_for

pytestmark = pytest.mark.timeout(60)

WORKER = re.compile(r"nbpar worker (\d+) \(pool (\d+)\)")


def _title(pid) -> str:
    # setproctitle writes the title over argv, padded with NULs (which psutil splits into
    # empty arguments) or, in older releases, with spaces psutil may split at
    return " ".join(part for part in psutil.Process(pid).cmdline() if part)


def _worker_titles(pool):
    """{worker id: (title, name)} of the pool's live workers, once every one has its title."""
    last = {}  # what was seen last, for the failure message

    def titled():
        workers = [w for w in pool.report().workers if w.pid is not None]
        if len(workers) < pool.n_jobs:
            return None
        seen = {}
        for w in workers:
            try:
                title, name = _title(w.pid), psutil.Process(w.pid).name()
            except psutil.NoSuchProcess:
                return None
            last[w.id] = (w.pid, title, name)
            if not WORKER.fullmatch(title):
                return None  # still starting
            seen[w.id] = (title, name)
        return seen
    try:
        return wait_for(titled, what="every worker's title")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; last seen (pid, title, name): {last}") from None


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_each_worker_shows_its_id_and_its_pool(start_method):
    with nbpar.WorkerPool(2, start_method=start_method, keep_alive=True) as first, \
            nbpar.WorkerPool(2, start_method=start_method, keep_alive=True) as second:
        assert first.map(tasks.square, range(8)) == [x * x for x in range(8)]
        assert second.map(tasks.square, range(8)) == [x * x for x in range(8)]
        numbers = set()
        for pool in (first, second):
            titles = _worker_titles(pool)
            assert sorted(titles) == [0, 1]
            pool_numbers = set()
            for worker_id, (title, name) in titles.items():
                found = WORKER.fullmatch(title)
                assert int(found[1]) == worker_id, title
                pool_numbers.add(found[2])
                assert name == f"nbpar-w{worker_id}-p{found[2]}", name
            assert len(pool_numbers) == 1, titles  # one pool: one number
            numbers |= pool_numbers
        assert len(numbers) == 2  # two pools: two numbers


def test_the_fork_server_shows_its_title():
    with nbpar.WorkerPool(2, start_method="forkserver") as pool:
        pids = set(pool.map(tasks.pid_of, range(4)))
    servers = [p for p in psutil.Process().children()
               if p.pid not in pids and _title(p.pid) == "nbpar fork server"]
    assert len(servers) == 1, [(p.pid, p.cmdline()) for p in psutil.Process().children()]
    assert servers[0].name() == "nbpar-forksrv"


_FALLBACK = """
import sys, types
{setup}
from nbpar.titles import set_title
set_title("nbpar worker 12 (pool 345)", "nbpar-w12-p345-and-more")
print(open("/proc/self/comm").read().strip())
"""


@pytest.mark.parametrize("setup", [
    "sys.modules['setproctitle'] = None",  # not installed
    "bad = types.ModuleType('setproctitle')\n"
    "def fail(title): raise OSError('no room for a title')\n"
    "bad.setproctitle = fail\nsys.modules['setproctitle'] = bad",  # installed, but failing
])
def test_without_setproctitle_the_name_is_set_and_nothing_raises(setup):
    done = subprocess.run([sys.executable, "-c", _FALLBACK.format(setup=setup)],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nbpar-w12-p345-"  # the kernel keeps 15 bytes

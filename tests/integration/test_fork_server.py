"""nbpar's fork server is part of the default start method, so its death is survivable: the
running map fails with WorkerDiedError naming the server's death, the report stays true, and
the same pool starts a new server for its next map."""

import os
import signal

import pytest

import nbpar
import tasks
from nbpar.backends import forkserver
from waiting import Background, wait_for


def _busy_workers(pool):
    return [w for w in pool.report().workers if w.state == "busy"]


@pytest.mark.parametrize("keep_alive", [False, True])
def test_the_fork_servers_death_mid_map_is_named_and_the_pool_goes_on(keep_alive):
    with nbpar.WorkerPool(2, keep_alive=keep_alive) as pool:
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        server = forkserver.get_server()
        running = Background(lambda: pool.map(tasks.nap, [0.5] * 40, chunk_size=1))
        wait_for(lambda: len(_busy_workers(pool)) == 2, what="two busy workers")
        os.kill(server.proc.pid, signal.SIGKILL)  # as the OOM killer would
        error = running.join(timeout=10).error
        assert isinstance(error, nbpar.WorkerDiedError), repr(error)
        assert "nbpar's fork server was killed by signal SIGKILL(-9)" in str(error)
        report = pool.report()  # true, and readable
        assert report.status == "failed"
        assert report.done + report.failed + len(report.pending) == report.total == 40
        assert not _busy_workers(pool)
        # the next map on the same pool runs, through a new server
        assert pool.map(tasks.square, range(6)) == [0, 1, 4, 9, 16, 25]
        assert forkserver.get_server().proc.pid != server.proc.pid
    with nbpar.WorkerPool(2) as pool:  # and so does a new pool
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_a_server_dead_between_maps_is_replaced_before_the_next():
    with nbpar.WorkerPool(2) as pool:
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        server = forkserver.get_server()
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

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


def _fresh_interpreter(tmp_path, body, **env):
    import subprocess
    import sys
    import textwrap
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "preload")
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env,
                                            "PYTHONPATH": here + os.pathsep
                                            + os.environ.get("PYTHONPATH", "")})


def test_the_server_imports_the_functions_modules_once_for_every_later_pool(tmp_path):
    log = tmp_path / "imports"
    done = _fresh_interpreter(tmp_path, """
        import os
        import nbpar
        from nbpar.backends import forkserver
        import heavy_mod                    # the caller imported it: the server may
        if __name__ == "__main__":
            for _ in range(3):
                with nbpar.WorkerPool(2) as pool:
                    assert pool.map(heavy_mod.work, range(8), chunk_size=1) == [
                        10 * x for x in range(8)]
            print(os.getpid(), forkserver.get_server().proc.pid)
    """, NBPAR_IMPORT_LOG=str(log))
    assert done.returncode == 0, done.stderr[-3000:]
    caller, server = map(int, done.stdout.split())
    importers = [int(line) for line in log.read_text().split()]
    # the caller once, the server once; no worker of the three pools imported it again
    assert sorted(importers) == sorted([caller, server]), importers


def test_a_module_the_server_cannot_import_is_imported_by_the_workers(tmp_path):
    done = _fresh_interpreter(tmp_path, """
        import nbpar
        from nbpar.backends import forkserver
        import fails_in_server
        if __name__ == "__main__":
            with nbpar.WorkerPool(2) as pool:
                print(pool.map(fails_in_server.work, range(3)))
            server = forkserver.get_server().proc.pid
            with nbpar.WorkerPool(2) as pool:
                print(pool.map(fails_in_server.work, range(3)))
            print(server == forkserver.get_server().proc.pid)
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[:3] == ["[100, 101, 102]", "[100, 101, 102]", "True"]


def test_only_modules_the_caller_imported_are_preloaded():
    from nbpar.bundle import preloadable
    assert preloadable({"json", "nbpar_no_such_module", "__main__", "builtins"}) == ["json"]


def test_the_server_and_its_workers_start_with_the_worker_side_of_nbpar_only():
    """The server (and each worker forked from it) imports what runs a worker, not the
    caller's side (the Boss, its state machine, the pool), which would lengthen every
    session's first pool."""
    probe = "sorted(m for m in __import__('sys').modules if m.startswith('nbpar.'))"
    with nbpar.WorkerPool(1) as pool:
        (held,) = pool.map(eval, [probe])
    assert "nbpar.worker" in held
    caller_side = {"nbpar.boss", "nbpar.state", "nbpar.pool", "nbpar.classic", "nbpar.events"}
    assert not caller_side & set(held), held

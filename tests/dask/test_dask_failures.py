"""backend="dask" when things go wrong: STOP_RIGHTNOW and timeouts on work that will not stop,
a Dask worker killed mid-map, a cluster without workers, Jupyter's SIGINT. Each test that
kills Dask workers has a cluster of its own (conftest.py)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbpar

import waiting
from dask_cluster import local_cluster
from waiting import Background

pytestmark = pytest.mark.timeout(90)
wait_for = functools.partial(waiting.wait_for, timeout=30.0)
HERE = Path(__file__).resolve().parent


def square(x):
    return x * x


def sleep_for(x):
    time.sleep(x)
    return x


def nap(x):
    time.sleep(0.02)
    return x


def die_on_3(x):
    if x == 3:
        os._exit(7)
    return x


def _replaced(client, pids):
    """True once the cluster is whole again and none of these worker processes is in it."""
    try:
        now = client.run(os.getpid, on_error="ignore")
    except OSError:  # a worker dying while asked
        return False
    return len(now) == 2 and not set(now.values()) & set(pids)


def test_stop_rightnow_kills_the_running_work(fresh_client):
    client = fresh_client
    pids = client.run(os.getpid)
    with nbpar.WorkerPool(backend="dask", client=client, keep_alive=True,
                          shared_objects={"offset": 1}) as pool:
        job = Background(lambda: pool.map(lambda shared, x: sleep_for(x), [60] * 4,
                                          chunk_size=1))
        wait_for(lambda: sum(bool(keys) for keys in client.processing().values()) == 2)
        time.sleep(0.5)  # both Dask workers are inside a 60 s task
        start = time.monotonic()
        pool.stop(now=True)
        job.join(10)
        assert time.monotonic() - start < 2
        err = job.error
        assert isinstance(err, nbpar.StoppedError)
        assert err.report.done == 0 and len(err.report.pending) == 4  # pending, not failed
        # The tasks would not stop: their workers were killed, and their nannies started new
        # ones; the shared objects died with them and are scattered again.
        wait_for(lambda: _replaced(client, pids.values()))
        assert pool.map(lambda shared, x: x + shared["offset"], range(10)) == list(range(1, 11))


def test_task_timeout(fresh_client):
    with nbpar.WorkerPool(backend="dask", client=fresh_client, task_timeout=1) as pool:
        start = time.monotonic()
        with pytest.raises(nbpar.TaskTimeoutError, match="index 1"):
            pool.map(sleep_for, [0.01, 60, 0.01])
        assert time.monotonic() - start < 10
        assert pool.map(square, range(10)) == [x * x for x in range(10)]


def test_a_worker_killed_mid_map_loses_and_repeats_nothing(fresh_client):
    client = fresh_client
    victim = next(iter(client.run(os.getpid).values()))
    with nbpar.WorkerPool(backend="dask", client=client) as pool:
        job = Background(lambda: pool.map(nap, range(300)))
        wait_for(lambda: pool.report().done >= 40)
        os.kill(victim, signal.SIGKILL)  # its nanny starts another; Dask reruns its batch
        job.join(60)
        assert job.result == list(range(300)), job.error
        assert pool.report().done == 300


def test_a_batch_that_kills_every_worker_fails_clearly():
    with local_cluster(**{"distributed.scheduler.allowed-failures": 0}) as client:
        with nbpar.WorkerPool(backend="dask", client=client) as pool:
            with pytest.raises(nbpar.WorkerDiedError, match="allowed-failures") as info:
                pool.map(die_on_3, range(6), chunk_size=1)
            # Dask suspects every task the dead worker had, item 3's or one queued with it
            assert any("raised by item" in note for note in info.value.__notes__)
            assert pool.report().failed == 1
            assert pool.map(square, range(4)) == [0, 1, 4, 9]


def test_a_cluster_without_workers_is_reported():
    with local_cluster(n_workers=0, **{"nbpar.no-workers-timeout": 1}) as client:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="no workers"):
            nbpar.WorkerPool(backend="dask", client=client)
        with nbpar.WorkerPool(2, backend="dask", client=client) as pool:
            with pytest.raises(nbpar.WorkerDiedError, match="no workers"):
                pool.map(square, range(10))
        assert time.monotonic() - start < 15


def test_jupyters_sigint_stops_the_map_and_spares_the_workers():
    proc = subprocess.Popen([sys.executable, str(HERE / "sigint_map.py")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=80)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "interrupted: stopped" in out and "OK" in out, out + err[-3000:]
    assert proc.returncode == 0, err[-3000:]

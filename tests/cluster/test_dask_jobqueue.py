"""nbpar's pool on a dask_jobqueue.SGECluster whose Dask workers are jobs of the real grid
engine: a map with live reports, a worker's grid job deleted with qdel mid-map (the map still
completes, equal to a serial run), and cluster.adapt starting workers when a map arrives.

The `sge` fixture (conftest.py) starts the engine, or skips outside CI when it cannot.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from waiting import Background, wait_for

HERE = Path(__file__).resolve().parent


@pytest.fixture
def sge_cluster(sge, monkeypatch, tmp_path):
    """An SGECluster of one-thread workers on this host's engine, its scheduler and workers on
    the loopback address; closed (its jobs deleted) at the end."""
    from dask.distributed import Client
    from dask_jobqueue import SGECluster

    for key, value in sge.items():
        if (key.startswith(("SGE_", "DRMAA_")) or key == "PATH") and os.environ.get(key) != value:
            monkeypatch.setenv(key, value)  # only what differs (see the grid fixture)
    monkeypatch.chdir(HERE)  # the jobs start here (-cwd), so they import jobqueue_tasks
    cluster = SGECluster(cores=1, processes=1, memory="1GB", resource_spec=None,
                         walltime=None, log_directory=str(tmp_path),
                         scheduler_options={"host": "127.0.0.1"},
                         worker_extra_args=["--host", "127.0.0.1"],
                         job_script_prologue=[f"export PYTHONPATH={HERE}"])
    client = Client(cluster)
    ids: set = set()
    try:
        yield cluster, client, ids
    finally:
        client.close()
        cluster.close()
        wait_for(lambda: not (ids & _grid_jobs(sge)), timeout=30,
                 what="the test's grid jobs gone")


def _grid_jobs(env) -> set:
    out = subprocess.run(["qstat", "-u", "*"], env=env, capture_output=True, text=True,
                         timeout=20).stdout
    return {line.split()[0] for line in out.splitlines()[2:] if line.strip()}


def _job_ids(cluster) -> set:
    return {job.job_id for job in cluster.workers.values() if job.job_id}


@pytest.mark.timeout(180)
def test_pool_on_sge_cluster_reports_survives_qdel_and_adapts(sge, sge_cluster):
    import nbpar
    from jobqueue_tasks import slow_square

    cluster, client, ids = sge_cluster
    items = list(range(60))
    serial = [slow_square(x, 0) for x in items]

    # -- two grid-job workers; a map with its reports
    cluster.scale(jobs=2)
    client.wait_for_workers(2, timeout=60)
    ids |= _job_ids(cluster)
    assert len(ids) == 2 and ids <= _grid_jobs(sge)  # real jobs of the engine
    with nbpar.WorkerPool(2, backend="dask", client=client) as pool:
        running = Background(lambda: pool.map(slow_square, items, chunk_size=1))
        live = wait_for(lambda: (r := pool.report()).status == "running" and 4 <= r.done < 60
                        and r, what="a live report mid-map")
        assert live.total == 60
        assert {w.where for w in live.workers} <= set(client.scheduler_info()["workers"]) | {None}
        assert any(w.where for w in live.workers)  # each slot says which Dask worker ran it

        # -- qdel one worker's grid job while the map runs
        victim = sorted(ids)[0]
        subprocess.run(["qdel", victim], env=sge, check=True, capture_output=True, timeout=20)
        wait_for(lambda: victim not in _grid_jobs(sge), timeout=30, what="the job deleted")
        assert pool.report().status == "running"  # deleted mid-map
        running.join(120)
        assert running.error is None, running.error
        assert running.result == serial
        assert pool.report().status == "finished"
    ids |= _job_ids(cluster)

    # -- no workers, adapt(minimum=0, maximum=2): a map brings them
    cluster.scale(0)
    wait_for(lambda: not client.scheduler_info()["workers"], timeout=60, what="no workers")
    cluster.adapt(minimum=0, maximum=2)
    with nbpar.WorkerPool(2, backend="dask", client=client) as pool:
        running = Background(lambda: pool.map(slow_square, items[:20], chunk_size=1))
        wait_for(lambda: client.scheduler_info()["workers"], timeout=60,
                 what="a worker started by adapt")
        ids |= _job_ids(cluster)
        running.join(120)
        assert running.error is None, running.error
        assert running.result == serial[:20]
    ids |= _job_ids(cluster)

"""A LocalCluster for the tests, and the check that all its worker processes went."""

from __future__ import annotations

import contextlib
import os

import dask
import distributed
import psutil


@contextlib.contextmanager
def local_cluster(n_workers=2, **config):
    settings = {"distributed.scheduler.worker-ttl": None, "nbpar.kill-grace": 0.3,
                "nbpar.no-workers-timeout": 10, **config}
    with dask.config.set(settings):
        cluster = distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=50)
        client = distributed.Client(cluster, set_as_default=False)
        seen = WorkerProcesses(client)
        try:
            yield client
        finally:
            seen.update()
            client.close()
            cluster.close()
            seen.assert_gone()


class WorkerProcesses:
    """Every worker process a cluster has had, so teardown can check they all went."""

    def __init__(self, client):
        self.client = client
        self.pids: set = set()
        self.update()

    def update(self):
        try:
            self.pids.update(self.client.run(_pid, on_error="ignore").values())
        except Exception:  # noqa: BLE001 - a cluster in trouble: what we have is enough
            pass

    def current(self) -> dict:
        pids = self.client.run(_pid)
        self.pids.update(pids.values())
        return pids

    def assert_gone(self):
        procs = []
        for pid in self.pids:
            try:
                procs.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=5)
        alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"Dask worker processes left behind: {alive}"


def _pid():
    return os.getpid()

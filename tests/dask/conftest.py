"""A real LocalCluster on 127.0.0.1 (worker processes with nannies) for the Dask backend.

`client` is one cluster for a test module, for the tests that leave its workers as they found
them: its processes exist before each test starts, so the leftover check (../conftest.py)
still applies to everything else. Tests that kill or restart Dask workers take `fresh_client`,
a cluster of their own, closed before the leftover check runs. Either way the fixture checks
at teardown that every worker process the cluster ever had is gone (dask_cluster.py).
"""

from __future__ import annotations

import pytest

pytest.importorskip("distributed")

from dask_cluster import WorkerProcesses, local_cluster


@pytest.fixture(scope="module")
def client():
    with local_cluster() as c:
        yield c


@pytest.fixture
def fresh_client():
    with local_cluster() as c:
        yield c


@pytest.fixture
def workers(client):
    """address -> pid of the shared cluster's workers (the tests must leave them alive)."""
    before = WorkerProcesses(client).current()
    yield before
    assert WorkerProcesses(client).current() == before, "a test replaced a Dask worker"

"""Run by test_dask_failures in a session of its own: Jupyter's interrupt is a SIGINT to the
whole process group, a LocalCluster's workers included. The map must stop as a local pool's
does, and the Dask workers must live on (the same processes) and take the next map."""

import os
import signal
import threading
import time

import distributed

import nbpar


def nap(x):
    time.sleep(0.05)
    return x


def main():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=50)
    client = distributed.Client(cluster)
    try:
        with nbpar.WorkerPool(backend="dask", client=client, keep_alive=True) as pool:
            pids = client.run(os.getpid)
            threading.Timer(1.0, os.killpg, (os.getpgrp(), signal.SIGINT)).start()
            try:
                pool.map(nap, range(400))
                print("not interrupted", flush=True)
            except KeyboardInterrupt:
                report = pool.report()
                print(f"interrupted: {report.status}, {report.done} done", flush=True)
            time.sleep(1.0)
            assert client.run(os.getpid) == pids, "a Dask worker died of the SIGINT"
            assert pool.map(nap, range(20)) == list(range(20))
            print("OK", flush=True)
    finally:
        client.close()
        cluster.close()


if __name__ == "__main__":
    main()

"""What the grid tests run inside the helper process (the one with libjemalloc preloaded).

Plain calls return what run_job returns or raise what it raises. A background map keeps its
pool here between calls, so a test can start it, watch the engine with qstat, send signals,
and collect the outcome; a stopped map's outcome comes back as a summary, not as its Report.
"""

import os
import threading
import time

import nbpar

_maps: dict = {}


def run(cmd, **kwargs):
    return nbpar.run_job(cmd, **kwargs)


def both_ways(cmd, **kwargs):
    """The same command on the grid and here: (stdout, stderr) or the JobError's fields."""
    out = []
    for local in (False, True):
        try:
            out.append(("ok",) + nbpar.run_job(cmd, run_locally=local, **kwargs))
        except nbpar.JobError as err:
            out.append(("error", err.exit_status, err.signal, err.aborted, err.stdout,
                        err.stderr))
    return out


def job(cmd, name):
    return nbpar.run_job(cmd, job_name=name)[0]


def gated_job(cmd, name, started, gate):
    """Mark the task started, wait for the test to open the gate, then run the job."""
    open(started, "w").close()
    while not os.path.exists(gate):
        time.sleep(0.02)
    return job(cmd, name)


def start_map(key, func_name, arg_tuples, n_jobs):
    """pool.starmap of a task here over the argument tuples, in a threading pool, in the
    background."""
    pool = nbpar.WorkerPool(n_jobs, start_method="threading")
    state = {"pool": pool, "result": None, "error": None}

    def go():
        try:
            state["result"] = pool.starmap(globals()[func_name], arg_tuples, chunk_size=1)
        except BaseException as exc:  # noqa: BLE001
            state["error"] = exc

    state["thread"] = threading.Thread(target=go)
    state["thread"].start()
    _maps[key] = state


def send(key, signal_name):
    _maps[key]["pool"].send(nbpar.Signal[signal_name])


def finish_map(key, timeout=60):
    """("ok", results) or ("error", type name, message, status, done, failed, pending indices)."""
    state = _maps.pop(key)
    state["thread"].join(timeout)
    pool = state["pool"]
    if state["thread"].is_alive():
        pool.terminate()
        raise AssertionError("the map did not end in time")
    pool.close()
    pool.join()
    err = state["error"]
    if err is None:
        return ("ok", state["result"])
    report = getattr(err, "report", None)
    return ("error", type(err).__name__, str(err), getattr(report, "status", None),
            getattr(report, "done", None), getattr(report, "failed", None),
            sorted(getattr(report, "pending_indices", [])))

"""nbpar: parallel maps you can watch and steer live from a notebook.

`nbpar.WorkerPool` runs the maps; `nbpar.Pool` and `nbpar.Executor` give it
multiprocessing's and concurrent.futures' APIs; `%load_ext nbpar` adds `%parallel_map`.
`import nbpar` stays light (no IPython, ipywidgets, tqdm, dask or NumPy): the UI layers
import them when used.
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what the names below are, for type checkers; imported when first used
    from .classic import Boss, Worker
    from .cluster import run_job
    from .errors import (CheckpointError, JobError, NbparError, SerializationError,
                         StoppedError, TaskTimeoutError, WorkerDiedError)
    from .executor import Executor
    from .jobs import AsyncResult
    from .logs import get_logger
    from .mp_pool import Pool
    from .pool import WorkerPool
    from .reports import Report, TaskError, WorkerInfo
    from .scheduling import (JobsLimit, LongerFirstScheduler, MaxMemoryScheduler,
                             MaxThreadsScheduler, Scheduler)
    from .shared import shared_array
    from .signals import Signal
    from .subscriptions import ReportChanged, SignalSent

# Each public name and the module that defines it, imported on first use: a process that only
# needs part of nbpar (the fork server, a worker) does not pay for the rest.
_HOMES = {
    "Boss": "classic", "Worker": "classic", "run_job": "cluster",
    "CheckpointError": "errors", "JobError": "errors", "NbparError": "errors",
    "SerializationError": "errors", "StoppedError": "errors", "TaskTimeoutError": "errors",
    "WorkerDiedError": "errors", "Executor": "executor", "AsyncResult": "jobs",
    "get_logger": "logs", "Pool": "mp_pool", "WorkerPool": "pool", "Report": "reports",
    "TaskError": "reports", "WorkerInfo": "reports", "JobsLimit": "scheduling",
    "LongerFirstScheduler": "scheduling", "MaxMemoryScheduler": "scheduling",
    "MaxThreadsScheduler": "scheduling", "Scheduler": "scheduling",
    "shared_array": "shared", "Signal": "signals", "ReportChanged": "subscriptions",
    "SignalSent": "subscriptions", "PoolWidget": "ui.widget",
}

__version__ = "0.1.0"

__all__ = [
    "AsyncResult", "Boss", "CheckpointError", "Executor", "JobError", "JobsLimit",
    "LongerFirstScheduler", "MaxMemoryScheduler", "MaxThreadsScheduler", "NbparError", "Pool",
    "Report", "ReportChanged", "Scheduler", "SerializationError", "Signal", "SignalSent",
    "StoppedError", "TaskError", "TaskTimeoutError",
    "Worker", "WorkerDiedError", "WorkerInfo", "WorkerPool", "get_logger", "process_map",
    "register_joblib", "register_pandas", "run_job",
    "shared_array", "thread_map",
]


def register_joblib(progress_bar=True, keep_workers=True, **pool_options):
    """Register joblib's parallel backend "nbpar", so that scikit-learn's `n_jobs` runs on
    an nbpar pool: ``with joblib.parallel_config(backend="nbpar"): search.fit(X, y)``.

    Imports joblib here, not with nbpar.

    Parameters
    ----------
    progress_bar : bool, default True
        Show each call's progress (the widget in a notebook, tqdm's bar elsewhere).
    keep_workers : bool, default True
        Keep the workers between calls (as loky does) until the handle's `close()`.
    **pool_options
        Options of each call's `nbpar.WorkerPool` (start_method, task_timeout, ...);
        n_jobs comes from joblib.

    Returns
    -------
    JoblibRuns
        The handle that steers its calls from another thread: `report()`, `halt()`,
        `resume()`, `stop(now=False)`, `close()`.
    """
    from .integrations.joblib_backend import register
    return register(progress_bar=progress_bar, keep_workers=keep_workers, **pool_options)


def register_pandas():
    """Register the pandas accessors `DataFrame.nbpar`, `Series.nbpar` and
    `DataFrameGroupBy.nbpar` (importing pandas here, not with nbpar)."""
    from .integrations import pandas_accessor
    pandas_accessor.register()


def process_map(fn, *iterables, max_workers=None, chunksize=1, **tqdm_kwargs):
    """tqdm.contrib.concurrent.process_map's drop-in, on nbpar worker processes.

    Parameters
    ----------
    fn : callable
        Called as ``fn(*args)`` for args in ``zip(*iterables)``.
    *iterables
        Its arguments, one iterable per parameter.
    max_workers : int, optional
        How many workers. Default: the CPU count.
    chunksize : int, default 1
        Above 1, fixes the batch size; 1 lets it adapt to measured task times.
    **tqdm_kwargs
        tqdm's options (desc, unit, disable, ...) for its bar outside a notebook;
        `pool=` a pool of yours to run on; `report=` a stopped call's report to continue
        it; and WorkerPool options (start_method, task_timeout, ...) for a pool of its own.

    Returns
    -------
    list
        The results, in input order.

    Raises
    ------
    nbpar.StoppedError
        Stopped from the widget or a thread; its message says how to continue.
    """
    from .integrations.tqdm_compat import process_map as _process_map
    return _process_map(fn, *iterables, max_workers=max_workers, chunksize=chunksize,
                        **tqdm_kwargs)


def thread_map(fn, *iterables, max_workers=None, chunksize=1, **tqdm_kwargs):
    """tqdm.contrib.concurrent.thread_map's drop-in, on an nbpar pool of threads.

    Parameters
    ----------
    fn, *iterables, max_workers, chunksize, **tqdm_kwargs
        As for `process_map` (start_method is "threading").
    """
    from .integrations.tqdm_compat import thread_map as _thread_map
    return _thread_map(fn, *iterables, max_workers=max_workers, chunksize=chunksize,
                       **tqdm_kwargs)


def __getattr__(name):
    """A public name, imported from its module when first asked for (`nbpar.PoolWidget`
    imports ipywidgets then, and only then)."""
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(f".{home}", __name__), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
        value = importlib.import_module(f".{name}", __name__)  # a submodule: nbpar.pool
    else:
        raise AttributeError(f"module 'nbpar' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOMES))


def load_ipython_extension(ip):
    """`%load_ext nbpar`: registers %parallel_map (the UI is imported here, not before)."""
    from .ui.magics import load
    load(ip)


def unload_ipython_extension(ip):
    """`%unload_ext nbpar`: removes %parallel_map."""
    from .ui.magics import unload
    unload(ip)

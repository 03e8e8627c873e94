"""nbpar: parallel maps you can watch and steer live from a notebook.

The public names are those of the contract; `import nbpar` stays light (no IPython,
ipywidgets, tqdm, dask or NumPy): the UI layers import them when used.
"""

from .classic import Boss, Worker
from .cluster import run_job
from .errors import (JobError, NbparError, SerializationError, StoppedError, TaskTimeoutError,
                     WorkerDiedError)
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

__version__ = "0.1.0"

__all__ = [
    "AsyncResult", "Boss", "Executor", "JobError", "JobsLimit", "LongerFirstScheduler",
    "MaxMemoryScheduler", "MaxThreadsScheduler", "NbparError", "Pool", "Report",
    "Scheduler", "SerializationError", "Signal", "StoppedError", "TaskError", "TaskTimeoutError",
    "Worker", "WorkerDiedError", "WorkerInfo", "WorkerPool", "get_logger", "run_job", "shared_array",
]


def __getattr__(name):
    """`nbpar.PoolWidget` (the notebook widget) imports ipywidgets only when asked for."""
    if name == "PoolWidget":
        from .ui.widget import PoolWidget
        return PoolWidget
    raise AttributeError(f"module 'nbpar' has no attribute {name!r}")


def load_ipython_extension(ip):
    """`%load_ext nbpar`: registers %parallel_map (the UI is imported here, not before)."""
    from .ui.magics import load
    load(ip)


def unload_ipython_extension(ip):
    from .ui.magics import unload
    unload(ip)

"""nbpar: parallel maps you can watch and steer live from a notebook.

The public names are those of the contract; `import nbpar` stays light (no IPython,
ipywidgets, tqdm, dask or NumPy): the UI layers import them when used.
"""

from .errors import (NbparError, SerializationError, StoppedError, TaskTimeoutError,
                     WorkerDiedError)
from .executor import Executor
from .jobs import AsyncResult
from .pool import WorkerPool
from .reports import Report, TaskError, WorkerInfo
from .scheduling import MaxThreadsScheduler, Scheduler
from .signals import Signal

__version__ = "0.1.0"

__all__ = [
    "AsyncResult", "Executor", "MaxThreadsScheduler", "NbparError", "Report", "Scheduler",
    "SerializationError", "Signal", "StoppedError", "TaskError", "TaskTimeoutError",
    "WorkerDiedError", "WorkerInfo", "WorkerPool",
]

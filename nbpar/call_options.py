"""Per-call settings of a map or a single call: what MPIRE lets each map choose.

`pool.map(func, items, task_timeout=5, worker_lifespan=100, max_tasks_active=64,
n_splits=8, worker_init=setup, worker_exit=teardown)`: each overrides the pool's own setting
for this call only. The timeout, the lifespan and the cap on items in flight are the job's
own (the Boss applies them to its batches alone, so calls with different settings may run at
once); the worker hooks belong to the worker processes, so a call with other hooks than the
workers hold has them replaced first, which needs the pool to be idle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import describe
from .failures import FailurePolicy, make_policy

if TYPE_CHECKING:
    from .state import Job

FAILURE_NAMES = ("retries", "retry_on", "on_error", "default")  # failures.py
NAMES = ("worker_init", "worker_exit", "task_timeout", "worker_lifespan", "max_tasks_active",
         "n_splits", *FAILURE_NAMES)


@dataclass(frozen=True)
class CallOptions:
    worker_init: Callable[..., Any] | None = None
    worker_exit: Callable[..., Any] | None = None
    task_timeout: float | None = None
    worker_lifespan: int | None = None
    max_tasks_active: int | None = None
    n_splits: int | None = None
    failure: FailurePolicy | None = None  # retries=, retry_on=, on_error=, default=

    @classmethod
    def parse(cls, options: dict[str, Any], what: str) -> CallOptions:
        if not options:
            return NONE  # (the usual call: no options, nothing to check)
        unknown = [name for name in options if name not in NAMES]
        if unknown:
            raise TypeError(f"{what}() got an unexpected keyword argument {unknown[0]!r}")
        own = {k: v for k, v in options.items() if k not in FAILURE_NAMES}
        failure = make_policy(**{k: v for k, v in options.items() if k in FAILURE_NAMES})
        made = cls(**own, failure=failure)
        made._check()
        return made

    @property
    def hooks(self) -> bool:
        return self.worker_init is not None or self.worker_exit is not None

    def _check(self) -> None:
        for name in ("worker_init", "worker_exit"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable, got {describe(hook)}")
        timeout = self.task_timeout
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, (int, float)) or timeout <= 0):
            raise ValueError(f"task_timeout must be a number of seconds > 0, got {timeout!r}")
        for name in ("worker_lifespan", "max_tasks_active", "n_splits"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")

    def chunk_size(self, chunk_size: int | None, total: int | None) -> int | None:
        """MPIRE's n_splits: the items in that many batches (when their number is known)."""
        if self.n_splits is None or chunk_size is not None or not total:
            return chunk_size
        return max(1, math.ceil(total / self.n_splits))

    def apply(self, job: Job) -> None:
        """The job's own settings (in the caller's thread, before the Boss has the job)."""
        job.task_timeout = self.task_timeout
        job.lifespan = self.worker_lifespan
        job.max_active = self.max_tasks_active
        job.failure = self.failure


NONE = CallOptions()


def check_callbacks(callback: Any, error_callback: Any) -> None:
    for name, hook in (("callback", callback), ("error_callback", error_callback)):
        if hook is not None and not callable(hook):
            raise TypeError(f"{name} must be callable, got {describe(hook)}")


def on_done(future: Future[Any], callback: Callable[[Any], object] | None,
            error_callback: Callable[[BaseException], object] | None) -> None:
    """multiprocessing's and MPIRE's callbacks: callback(result) or error_callback(error),
    in the thread that ends the future (the Boss's)."""
    if callback is None and error_callback is None:
        return

    def done(f: Future[Any]) -> None:
        error = f.exception()
        if error is None:
            if callback is not None:
                callback(f.result())
        elif error_callback is not None:
            error_callback(error)
    future.add_done_callback(done)

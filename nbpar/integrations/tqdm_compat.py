"""`nbpar.process_map` / `nbpar.thread_map`: drop-ins for `tqdm.contrib.concurrent`'s.

Same call, same result: `process_map(fn, *iterables, max_workers=None, chunksize=1,
**tqdm_kwargs)` returns `[fn(*args) for args in zip(*iterables)]`, in order, with a progress
bar; `thread_map` the same on threads. The work runs on an nbpar pool: in a notebook the bar is
the pool's widget (its buttons reach the pool), elsewhere tqdm's bar with the tqdm options
given (desc, unit, disable, ...). nbpar's batches adapt to the measured task times; a
`chunksize` above 1 fixes them, as it fixes tqdm's.

Two keywords tqdm lacks: `pool=` runs on a pool of yours (to steer it from another thread),
and `report=` continues a stopped call (`nbpar.StoppedError.report`), running only what it
left pending.
"""

from __future__ import annotations

import os

from ..errors import StoppedError
from ..pool import WorkerPool
from .views import borrowed_pool, show

_NOT_FOR_TQDM = ("lock_name", "tqdm_class")  # tqdm's own plumbing: nbpar draws its own bar


def process_map(fn, *iterables, max_workers=None, chunksize=1, pool=None, report=None,
                **tqdm_kwargs):
    """tqdm's `process_map` on nbpar worker processes (forkserver unless `start_method=` is
    given among the keywords, with any other WorkerPool option)."""
    return _map(fn, iterables, max_workers, chunksize, pool, report, tqdm_kwargs,
                "process_map", None)


def thread_map(fn, *iterables, max_workers=None, chunksize=1, pool=None, report=None,
               **tqdm_kwargs):
    """tqdm's `thread_map` on an nbpar pool of threads."""
    return _map(fn, iterables, max_workers, chunksize, pool, report, tqdm_kwargs,
                "thread_map", "threading")


_POOL_OPTIONS = ("start_method", "shared_objects", "worker_init", "worker_exit",
                 "task_timeout", "max_tasks_per_worker", "scheduler", "log_level")


def _map(fn, iterables, max_workers, chunksize, pool, report, tqdm_kwargs, name, method):
    options = {k: tqdm_kwargs.pop(k) for k in _POOL_OPTIONS if k in tqdm_kwargs}
    if method is not None:
        if options.get("start_method", method) != method:
            raise ValueError(f"{name} runs on threads: use process_map for start_method="
                             f"{options['start_method']!r}")
        options["start_method"] = method
    if pool is not None and (max_workers is not None or options.keys() - {"start_method"}):
        raise TypeError(f"{name}: give pool= or the options of a new pool (max_workers=, "
                        f"...), not both")
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"{name}: chunksize must be a whole number >= 1, got {chunksize!r}")
    if report is None and not iterables:
        raise TypeError(f"{name}() needs at least one iterable (or report= to continue)")
    for key in _NOT_FOR_TQDM:
        tqdm_kwargs.pop(key, None)
    disable = tqdm_kwargs.get("disable", False)
    items = None if report is not None else list(zip(*iterables))
    if max_workers is None:  # the stdlib executors' defaults, which tqdm's wrappers keep
        cpus = os.cpu_count() or 1
        max_workers = min(32, cpus + 4) if method == "threading" else cpus
        if items is not None:  # no more workers than items: the results are the same
            max_workers = max(1, min(max_workers, len(items)))
    with borrowed_pool(pool, lambda: WorkerPool(max_workers, **options)) as pool:
        view = None
        try:
            total = report.total if report is not None else len(items)
            tqdm_kwargs.setdefault("total", total)
            view = None if disable else _view(pool, report, tqdm_kwargs)
            chunk_size = chunksize if chunksize > 1 else None
            try:
                if report is not None:
                    return pool.starmap(fn, report=report, chunk_size=chunk_size)
                return pool.starmap(fn, items, chunk_size=chunk_size)
            except StoppedError as err:
                r = err.report
                raise StoppedError(f"{name} was stopped after {r.done} of {r.total} items; "
                                   f"continue it with nbpar.{name}(fn, report=err.report)",
                                   r) from None
        finally:
            if view is not None:
                view.close()


def _view(pool, report, tqdm_kwargs):
    total = tqdm_kwargs.pop("total")
    initial = tqdm_kwargs.pop("initial", report.done if report is not None else 0)
    return show(pool, total, initial, **tqdm_kwargs)

"""nbpar.Pool: multiprocessing.Pool's API over a kept-alive WorkerPool.

Code written for `multiprocessing.Pool` runs unchanged: the constructor (`processes`,
`initializer`, `initargs`, `maxtasksperchild`, `context`), `apply`, `apply_async`, `map`,
`map_async`, `starmap`, `starmap_async`, `imap`, `imap_unordered` (callbacks and
error_callbacks included), `close`, `join`, `terminate` and the context manager, with
multiprocessing's errors for misuse. Underneath it is one WorkerPool (`pool.pool`): the Boss,
the widget and its buttons, batches sized by measured task times, named errors.

What is the engine's, not multiprocessing's: a map's chunks are sized by measured task times
unless `chunksize` is given; an error in `map` stops the rest of that map (multiprocessing lets
it run on unseen); callbacks run in the pool's Boss thread (multiprocessing: its result
thread), so they must be quick; a worker that dies fails the call it ran with
`nbpar.WorkerDiedError` instead of leaving it waiting for ever; an initializer that raises
fails the calls waiting for it instead of restarting workers for ever. `progress_bar=True`
(on the constructor or on a map) draws tqdm's bar, or nbpar's widget in a notebook when the
pool is displayed.
"""

from __future__ import annotations

import os
import time
from collections import deque

from .errors import rebuild
from .executor import EachCall, Raised, stdlib_start_options
from .jobs import AsyncResult, Release, ResultTimeout
from .call_options import check_callbacks, on_done
from .pool import WorkerPool

_RUN, _CLOSE, _TERMINATE = "RUN", "CLOSE", "TERMINATE"


class Pool:
    """multiprocessing.Pool's API over nbpar's engine.

    `from nbpar import Pool` and code written for multiprocessing runs unchanged; underneath
    is one kept-alive `nbpar.WorkerPool` (`pool.pool`): the widget and its buttons, batches
    sized by measured task times, errors that name their item, and a dead worker that fails
    its call (`nbpar.WorkerDiedError`) instead of leaving it waiting for ever.

    Parameters
    ----------
    processes : int, optional
        How many worker processes. Default: the CPU count.
    initializer : callable, optional
        Called as ``initializer(*initargs)`` in each worker as it starts.
    initargs : tuple, default ()
        Its arguments.
    maxtasksperchild : int, optional
        Replace a worker after that many tasks. Default None: never.
    context : multiprocessing context, optional
        Its start method becomes the pool's. Default: nbpar's fork server.
    progress_bar : bool, default False
        Draw a progress bar for every `map` and `starmap` (each may say otherwise).
    **pool_options
        Any other `nbpar.WorkerPool` option (``task_timeout=``, ``shared_objects=``, ...);
        keep_alive is True by default.
    """

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None,
                 context=None, *, progress_bar=False, **pool_options):
        if processes is None:
            processes = os.cpu_count() or 1
        if not isinstance(processes, int) or processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")
            pool_options["max_tasks_per_worker"] = maxtasksperchild
        stdlib_start_options(pool_options, context, "context", initializer, initargs,
                             Initializer)
        pool_options.setdefault("keep_alive", True)
        self._pool = WorkerPool(processes, **pool_options)
        self._processes = processes
        self._state = _RUN
        self.progress_bar = progress_bar

    @property
    def pool(self) -> WorkerPool:
        """The WorkerPool underneath: halt(), resume(), stop(), report(), PoolWidget(...)."""
        return self._pool

    # -- single calls
    def apply(self, func, args=(), kwds={}):  # noqa: B006 - multiprocessing.Pool's signature
        """``func(*args, **kwds)`` in a worker; waits and returns its result (or raises its
        error). `apply_async` takes the same arguments."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func, args=(), kwds={}, callback=None,  # noqa: B006 - as above
                    error_callback=None):
        """``func(*args, **kwds)`` in a worker, returning at once.

        Parameters
        ----------
        func : callable
            The function.
        args : tuple, default ()
            Positional arguments.
        kwds : dict, default {}
            Keyword arguments.
        callback : callable, optional
            ``callback(result)`` on success, in the pool's Boss thread (keep it quick).
        error_callback : callable, optional
            ``error_callback(exception)`` on failure, in the same thread.

        Returns
        -------
        nbpar.AsyncResult
        """
        self._check_running()
        return self._pool.apply_async(func, args, kwds, callback=callback,
                                      error_callback=error_callback)

    # -- maps
    def map(self, func, iterable, chunksize=None, *, progress_bar=None):
        """``func(item)`` for every item, as a list in input order.

        Parameters
        ----------
        func : callable
            The function.
        iterable : iterable
            The items, read whole at once.
        chunksize : int, optional
            Items per batch. Default None: adapted to measured task times.
        progress_bar : bool, optional
            Draw a progress bar. Default: the constructor's `progress_bar`.

        Returns
        -------
        list
            The results in input order. The first error stops the map and is raised.
        """
        return self._map(func, iterable, chunksize, False, progress_bar)

    def starmap(self, func, iterable, chunksize=None, *, progress_bar=None):
        """``func(*item)`` for every item (a tuple of arguments), as a list in input order.

        Parameters
        ----------
        func, iterable, chunksize, progress_bar
            As for `map`.
        """
        return self._map(func, iterable, chunksize, True, progress_bar)

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        """`map`, returning at once.

        Parameters
        ----------
        func, iterable, chunksize
            As for `map`.
        callback : callable, optional
            ``callback(results)`` with the list, in the pool's Boss thread.
        error_callback : callable, optional
            ``error_callback(exception)`` with the map's error, in the same thread.

        Returns
        -------
        nbpar.AsyncResult
            ``.get(timeout)`` gives the list.
        """
        return self._map_async(func, iterable, chunksize, False, callback, error_callback)

    def starmap_async(self, func, iterable, chunksize=None, callback=None,
                      error_callback=None):
        """`starmap`, returning at once.

        Parameters
        ----------
        func, iterable, chunksize, callback, error_callback
            As for `map_async`.

        Returns
        -------
        nbpar.AsyncResult
        """
        return self._map_async(func, iterable, chunksize, True, callback, error_callback)

    def imap(self, func, iterable, chunksize=1):
        """``func(item)`` for every item: an iterator of the results in input order, as they
        come.

        Parameters
        ----------
        func : callable
            The function.
        iterable : iterable
            The items, read whole at once.
        chunksize : int, default 1
            Above 1, fixes the batch size; 1 lets it adapt.

        Returns
        -------
        iterator
            An item's exception is raised when the iterator reaches it; its
            ``next(timeout)`` raises multiprocessing.TimeoutError, as multiprocessing's.
        """
        return self._imap(func, iterable, chunksize, ordered=True)

    def imap_unordered(self, func, iterable, chunksize=1):
        """`imap`, with the results as they come, in any order.

        Parameters
        ----------
        func, iterable, chunksize
            As for `imap`.
        """
        return self._imap(func, iterable, chunksize, ordered=False)

    def _map(self, func, iterable, chunksize, star, progress_bar):
        self._check_running()
        job, future = self._pool._collect(func, list(iterable), star=star,
                                          chunk_size=chunksize)
        if progress_bar is None:
            progress_bar = self.progress_bar
        bar = self._pool._progress(job, progress_bar) if progress_bar else None
        self._pool._follow(job, bar)
        return future.result()

    def _map_async(self, func, iterable, chunksize, star, callback, error_callback):
        self._check_running()
        check_callbacks(callback, error_callback)
        job, future = self._pool._collect(func, list(iterable), star=star,
                                          chunk_size=chunksize)
        on_done(future, callback, error_callback)
        return AsyncResult(future)

    def _imap(self, func, iterable, chunksize, ordered):
        self._check_running()
        if chunksize < 1:
            raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")
        job = self._pool._eager_job(EachCall(func), [(x,) for x in iterable], star=True,
                                    chunk_size=chunksize if chunksize > 1 else None)
        return IMapIterator(job.handle, ordered)

    # -- lifetime
    def close(self):
        """Take no more work; the workers leave once what was given is done."""
        if self._state == _RUN:
            self._state = _CLOSE
            self._pool.close()

    def terminate(self):
        """Stop every worker now; what was running is lost."""
        self._state = _TERMINATE
        self._pool.terminate()

    def join(self):
        """Wait for the workers to leave, after close() or terminate()."""
        if self._state == _RUN:
            raise ValueError("Pool is still running")
        self._pool.join()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()  # as multiprocessing's: the with-block's end terminates

    def _check_running(self):
        if self._state != _RUN:
            raise ValueError("Pool not running")

    def _repr_mimebundle_(self, include=None, exclude=None):
        """In a notebook the pool shows as its live widget with its buttons."""
        return self._pool._repr_mimebundle_(include, exclude)

    def __repr__(self):
        return f"<nbpar.Pool state={self._state} pool_size={self._processes}>"


class Initializer:
    """multiprocessing's initializer as a worker_init: initializer(*initargs), the worker's
    leading arguments left out."""

    def __init__(self, initializer, initargs):
        self.initializer, self.initargs = initializer, initargs

    def __call__(self, *leading):
        self.initializer(*self.initargs)


class IMapIterator:
    """imap's iterator: `next(timeout=None)` raises multiprocessing.TimeoutError when the
    next result is not there in time (and may be called again)."""

    def __init__(self, handle, ordered):
        self._handle = handle
        self._release = Release(ordered)
        self._ready: deque = deque()

    def __iter__(self):
        return self

    def next(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            try:
                chunk = self._handle.next_chunk_until(deadline)
            except TimeoutError:
                raise ResultTimeout(f"no result within {timeout} s") from None
            if chunk is None:
                raise StopIteration
            self._ready.extend(self._release.add(*chunk))
        value = self._ready.popleft()
        if type(value) is Raised:
            raise rebuild(value.payload, where=f"raised by item {value.item}")
        return value

    __next__ = next

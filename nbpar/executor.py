"""nbpar.Executor: concurrent.futures.ProcessPoolExecutor's API over a kept-alive WorkerPool.

Code written for `ProcessPoolExecutor` runs unchanged: the same constructor (`max_workers`,
`mp_context`, `initializer`, `initargs`, `max_tasks_per_child`), `submit`, `map` (with
`timeout` and `chunksize`) and `shutdown(wait, cancel_futures)`, with the same errors for bad
arguments. What it adds is the engine's: the widget and its buttons (`PoolWidget(ex.pool)`),
named errors, and a map that is one job for the Boss rather than one future per item.

Where it differs, on purpose: a worker that dies breaks only the futures it held (each gets
`nbpar.WorkerDiedError`, a `BrokenProcessPool`), and an initializer that fails breaks the
calls waiting for it; in both cases the executor stays usable, where the stdlib's would refuse
every later call.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Executor as _Executor
from concurrent.futures.process import BrokenProcessPool

from .errors import ErrorPayload, capture, describe, rebuild
from .pool import WorkerPool


class Executor(_Executor):
    """concurrent.futures.ProcessPoolExecutor's API over nbpar's engine.

    `from nbpar import Executor as ProcessPoolExecutor` and code written for the stdlib runs
    unchanged; underneath is one kept-alive `nbpar.WorkerPool` (`ex.pool`), so it gains the
    widget and its buttons (``nbpar.PoolWidget(ex.pool)``), errors that name their item, and
    a dead worker that fails only its own calls (`nbpar.WorkerDiedError`, a
    `BrokenProcessPool`) while the executor stays usable.

    Parameters
    ----------
    max_workers : int, optional
        How many worker processes. Default: the CPU count.
    mp_context : multiprocessing context, optional
        Its start method becomes the pool's (``multiprocessing.get_context("spawn")``).
        Default: nbpar's fork server.
    initializer : callable, optional
        Called as ``initializer(*initargs)`` in each worker as it starts; if it raises, the
        calls waiting for it fail with `BrokenProcessPool`.
    initargs : tuple, default ()
        Its arguments.
    max_tasks_per_child : int, optional
        Replace a worker after that many tasks. Default None: never.
    **pool_options
        Any other `nbpar.WorkerPool` option (``task_timeout=``, ``shared_objects=``, ...);
        keep_alive is True by default, so a call costs one round trip.
    """

    def __init__(self, max_workers=None, mp_context=None, initializer=None, initargs=(), *,
                 max_tasks_per_child=None, **pool_options):
        if max_workers is not None and not (isinstance(max_workers, int) and max_workers > 0):
            raise ValueError(f"max_workers must be greater than 0, got {max_workers!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be a callable, got {describe(initializer)}")
        if max_tasks_per_child is not None:
            if not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
            pool_options["max_tasks_per_worker"] = max_tasks_per_child
        stdlib_start_options(pool_options, mp_context, "mp_context", initializer, initargs,
                             Initializer)
        pool_options.setdefault("keep_alive", True)
        self._pool = WorkerPool(max_workers, **pool_options)
        self._futures: set = set()
        self._lock = threading.Lock()
        self._shutdown = False

    @property
    def pool(self) -> WorkerPool:
        """The WorkerPool underneath: give it to `nbpar.PoolWidget`, or send it signals."""
        return self._pool

    def submit(self, fn, /, *args, **kwargs):
        """Schedule ``fn(*args, **kwargs)`` in a worker.

        Parameters
        ----------
        fn : callable
            The function.
        *args, **kwargs
            Its arguments.

        Returns
        -------
        concurrent.futures.Future
            Its result, or the call's error (a dead worker: `nbpar.WorkerDiedError`).

        Raises
        ------
        RuntimeError
            After `shutdown`.
        """
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future = self._pool.submit(fn, *args, **kwargs)
            self._futures.add(future)
        future.add_done_callback(self._discard)
        return future

    def _discard(self, future):
        with self._lock:
            self._futures.discard(future)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """``fn(*args)`` for args in ``zip(*iterables)``: an iterator of the results in input
        order, as they come.

        The map runs as one job of the pool, in batches sized by measured task times, and
        runs to its end whether or not the iterator is read (as the stdlib's does).

        Parameters
        ----------
        fn : callable
            The function.
        *iterables
            Its arguments, one iterable per parameter; read whole at once.
        timeout : float, optional
            Seconds from this call after which reading a result not yet there raises
            TimeoutError. Default None: no limit.
        chunksize : int, default 1
            Above 1, fixes the batch size; 1 lets it adapt.

        Returns
        -------
        iterator
            The results in input order; an item that raised gives its exception when the
            iterator reaches it, as with the stdlib.
        """
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {describe(fn)}")
        deadline = None if timeout is None else time.monotonic() + timeout
        items = list(zip(*iterables))  # read now, as the stdlib does
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            results = self._pool._eager(EachCall(fn), items, star=True,
                                        chunk_size=chunksize if chunksize > 1 else None,
                                        deadline=deadline)
        return _unwrap(results)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Take no more calls, and end the workers once what was given is done.

        Parameters
        ----------
        wait : bool, default True
            Wait for the pending calls and the workers to end.
        cancel_futures : bool, default False
            Cancel the calls not yet started, and stop the rest of any map (its running
            tasks finish).
        """
        with self._lock:
            self._shutdown = True
            pending = list(self._futures)
        if cancel_futures:
            for future in pending:
                future.cancel()  # those not yet handed to a worker
            self._pool.stop(now=False)  # the rest of any map: running tasks finish
        self._pool.close()
        if wait:
            self._pool.join()


def stdlib_start_options(pool_options, context, context_name, initializer, initargs, wrap):
    """The stdlib's start-up arguments as pool options, in place: a multiprocessing context
    (`mp_context=`, `context=`) gives the start method, and `initializer(*initargs)`, wrapped
    by `wrap` (each API's failure semantics), becomes the worker_init."""
    if initializer is not None:
        if not callable(initializer):
            raise TypeError("initializer must be a callable")
        if "worker_init" in pool_options:
            raise ValueError("give initializer= or worker_init=, not both")
        pool_options["worker_init"] = wrap(initializer, tuple(initargs))
    if context is not None:
        method = context.get_start_method()
        given = pool_options.setdefault("start_method", method)
        if given != method:
            raise ValueError(f"{context_name} starts workers by {method!r} but start_method="
                             f"{given!r} was given: give one of them")


class Initializer:
    """ProcessPoolExecutor's initializer as a worker_init: called with initargs (the worker's
    leading arguments are not passed); a failure is a BrokenProcessPool, as in the stdlib."""

    def __init__(self, initializer, initargs):
        self.initializer, self.initargs = initializer, initargs

    def __call__(self, *leading):
        try:
            self.initializer(*self.initargs)
        except Exception as exc:
            raise BrokenProcessPool(f"the initializer {describe(self.initializer)} raised "
                                    f"{type(exc).__name__}: {exc}") from exc


class EachCall:
    """fn for a map whose items fail one by one (concurrent.futures' map): an exception is
    returned as a `Raised`, and raised when the caller's iterator reaches that item."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        try:
            return self.fn(*args)
        except Exception as exc:  # noqa: BLE001 - re-raised in the caller, at its item
            return Raised(capture(exc), describe(args[0] if len(args) == 1 else args))


class Raised:
    """An item's exception, carried as its result."""

    __slots__ = ("payload", "item")

    def __init__(self, payload: ErrorPayload, item: str):
        self.payload, self.item = payload, item

    def __reduce__(self):
        return Raised, (self.payload, self.item)


def _unwrap(results):
    try:
        for value in results:
            if type(value) is Raised:
                raise rebuild(value.payload, where=f"raised by item {value.item}")
            yield value
    finally:
        results.close()  # an iterator dropped early ends its map

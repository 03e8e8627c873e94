"""nbpar.mpire.WorkerPool: MPIRE's calling conventions over nbpar's WorkerPool.

`from mpire import WorkerPool` becomes `from nbpar.mpire import WorkerPool`. What MPIRE does
differently from nbpar *with the same names* lives here, and only that:

- items are unpacked as MPIRE unpacks them: a dict is passed as keyword arguments, any other
  iterable but a string, bytes or a NumPy array as positional ones, anything else as the one
  argument (nbpar's own maps pass each item as it is; `starmap` unpacks tuples);
- MPIRE's parameter names (`iterable_of_args`, `kwargs` of apply_async taken the same way),
  `concatenate_numpy_output`, `stop_and_join`, and MPIRE's constructor arguments that have no
  meaning here (`daemon`, `use_dill`, `enable_insights`, `order_tasks`) accepted.

Everything else -- per-call `worker_init`, `worker_exit`, `task_timeout`, `worker_lifespan`,
`max_tasks_active`, `n_splits`, callbacks, `get_exit_results()` -- is nbpar's WorkerPool's own
(see call_options.py), so plain nbpar code has it too.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import pool as _pool

_UNSUPPORTED = ("worker_init_timeout", "worker_exit_timeout")


class Unpack:
    """func called on an item the way MPIRE calls it (see the module's docstring)."""

    def __init__(self, func):
        self.func = func  # (named `func`: reports and errors name the wrapped function)

    def __call__(self, *args):
        *leading, item = args
        if isinstance(item, dict):
            return self.func(*leading, **item)
        if isinstance(item, Iterable) and not isinstance(item, (str, bytes)) and not (
                _is_ndarray(item)):
            return self.func(*leading, *item)
        return self.func(*leading, item)


def _is_ndarray(obj) -> bool:
    cls = type(obj)
    return cls.__name__ == "ndarray" and cls.__module__ == "numpy"


class WorkerPool(_pool.WorkerPool):
    """MPIRE's WorkerPool API over nbpar's engine: `from nbpar.mpire import WorkerPool`.

    Items are unpacked as MPIRE unpacks them (a dict as keyword arguments, any other
    iterable but str, bytes and a NumPy array as positional ones); everything else is
    `nbpar.WorkerPool`'s, whose options also work here.

    Parameters
    ----------
    n_jobs, shared_objects, pass_worker_id, use_worker_state, start_method, keep_alive
        As for `nbpar.WorkerPool`.
    daemon, use_dill, enable_insights, order_tasks
        MPIRE's, accepted and without effect here: workers may always start processes of
        their own, functions travel with cloudpickle when needed, and the widget and
        `report()` show each worker's tasks and busy time.
    cpu_ids : None
        Pinning workers to CPUs is not supported: anything but None raises
        NotImplementedError.
    **nbpar_options
        Any other `nbpar.WorkerPool` option (worker_init, worker_exit, task_timeout, ...).
    """

    def __init__(self, n_jobs=None, daemon=True, cpu_ids=None, shared_objects=None,
                 pass_worker_id=False, use_worker_state=False, start_method=None,
                 keep_alive=False, use_dill=False, enable_insights=False, order_tasks=False,
                 **nbpar_options):
        if cpu_ids is not None:
            raise NotImplementedError("cpu_ids (pinning workers to CPUs) is not supported by "
                                      "nbpar; leave it out")
        super().__init__(n_jobs, start_method=start_method, shared_objects=shared_objects,
                         pass_worker_id=pass_worker_id, use_worker_state=use_worker_state,
                         keep_alive=keep_alive, **nbpar_options)

    def map(self, func, iterable_of_args, iterable_len=None, max_tasks_active=None,
            chunk_size=None, n_splits=None, worker_lifespan=None, progress_bar=False,
            concatenate_numpy_output=True, **options):
        """MPIRE's map: ``func(*leading, *args)`` for each item of `iterable_of_args`, as a
        list in input order.

        Parameters
        ----------
        func : callable
            The function; each item is unpacked into its arguments (see the class).
        iterable_of_args : iterable
            The items.
        iterable_len : int, optional
            Their number, when the iterable cannot say.
        max_tasks_active : int, optional
            Items in flight at most.
        chunk_size : int, optional
            Items per batch. Default None: adapted to measured task times.
        n_splits : int, optional
            The items in about that many batches (when `chunk_size` is not given).
        worker_lifespan : int, optional
            Tasks a worker runs before it is replaced.
        progress_bar : bool, default False
            Draw a progress bar.
        concatenate_numpy_output : bool, default True
            When every result is a NumPy array, return them concatenated into one.
        **options
            MPIRE's per-call worker_init, worker_exit and task_timeout, and every other
            keyword of `nbpar.WorkerPool.map` (retries, on_error, ...).
            progress_bar_options and progress_bar_style are accepted and ignored.

        Returns
        -------
        list or numpy.ndarray
        """
        results = super().map(Unpack(func), iterable_of_args, **_map_options(
            iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan,
            progress_bar, options))
        return _concatenated(results) if concatenate_numpy_output else results

    def map_unordered(self, func, iterable_of_args, iterable_len=None, max_tasks_active=None,
                      chunk_size=None, n_splits=None, worker_lifespan=None, progress_bar=False,
                      **options):
        """`map` with the results in completion order (a list).

        Parameters
        ----------
        func, iterable_of_args, iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan, progress_bar, **options
            As for `map`.
        """  # noqa: E501 - numpydoc names shared parameters on one line
        return super().map_unordered(Unpack(func), iterable_of_args, **_map_options(
            iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan,
            progress_bar, options))

    def imap(self, func, iterable_of_args, iterable_len=None, max_tasks_active=None,
             chunk_size=None, n_splits=None, worker_lifespan=None, progress_bar=False,
             **options):
        """`map` as an iterator of the results in input order, as they come.

        Parameters
        ----------
        func, iterable_of_args, iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan, progress_bar, **options
            As for `map`; the iterable is read lazily.
        """  # noqa: E501 - numpydoc names shared parameters on one line
        return super().imap(Unpack(func), iterable_of_args, **_map_options(
            iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan,
            progress_bar, options))

    def imap_unordered(self, func, iterable_of_args, iterable_len=None, max_tasks_active=None,
                       chunk_size=None, n_splits=None, worker_lifespan=None,
                       progress_bar=False, **options):
        """`imap` with the results in completion order.

        Parameters
        ----------
        func, iterable_of_args, iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan, progress_bar, **options
            As for `map`; the iterable is read lazily.
        """  # noqa: E501 - numpydoc names shared parameters on one line
        return super().imap_unordered(Unpack(func), iterable_of_args, **_map_options(
            iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan,
            progress_bar, options))

    def apply_async(self, func, args=(), kwargs=None, callback=None, error_callback=None,
                    **options):
        """One call of `func` in a worker, as MPIRE makes it; returns at once.

        Parameters
        ----------
        func : callable
            The function.
        args : object, default ()
            Its positional arguments: an iterable (but str, bytes, a NumPy array) is
            unpacked, anything else is the one argument.
        kwargs : dict, optional
            Its keyword arguments.
        callback : callable, optional
            ``callback(result)`` on success, in the pool's Boss thread (keep it quick).
        error_callback : callable, optional
            ``error_callback(exception)`` on failure, in the same thread.
        **options
            As for `nbpar.WorkerPool.apply_async` (worker_init, task_timeout, retries, ...).

        Returns
        -------
        nbpar.AsyncResult
        """
        _refuse_unsupported(options)
        if not (isinstance(args, Iterable) and not isinstance(args, (str, bytes))
                  and not _is_ndarray(args)):
            args = (args,)
        return super().apply_async(func, tuple(args), kwargs, callback=callback,
                                   error_callback=error_callback, **options)

    def apply(self, func, args=(), kwargs=None, callback=None, error_callback=None,
              **options):
        """`apply_async`, waited for: returns the result or raises the call's error.

        Parameters
        ----------
        func, args, kwargs, callback, error_callback, **options
            As for `apply_async`.
        """
        return self.apply_async(func, args, kwargs, callback, error_callback,
                                **options).get()

    def stop_and_join(self, keep_alive=False):
        """MPIRE's: let the pending work finish, then end the workers (raising a
        worker_exit error, if any).

        Parameters
        ----------
        keep_alive : bool, default False
            MPIRE's; the workers end either way.
        """
        self.close()
        super().join()

    def join(self, keep_alive=False):
        """MPIRE's join: as `stop_and_join` (nbpar's own join only waits for a closed pool).

        Parameters
        ----------
        keep_alive : bool, default False
            MPIRE's; the workers end either way.
        """
        self.stop_and_join()


def _map_options(iterable_len, max_tasks_active, chunk_size, n_splits, worker_lifespan,
                 progress_bar, options):
    _refuse_unsupported(options)
    options.pop("progress_bar_options", None)  # tqdm's look: nbpar draws its own
    options.pop("progress_bar_style", None)
    return dict(iterable_len=iterable_len, chunk_size=chunk_size, progress_bar=progress_bar,
                max_tasks_active=max_tasks_active, n_splits=n_splits,
                worker_lifespan=worker_lifespan, **options)


def _refuse_unsupported(options):
    for name in _UNSUPPORTED:
        if options.pop(name, None) is not None:
            raise NotImplementedError(f"{name} is not supported by nbpar: a worker_init or "
                                      f"worker_exit that hangs is ended with the pool")


def _concatenated(results):
    """MPIRE's concatenate_numpy_output: a list of NumPy arrays becomes one array."""
    if results and all(_is_ndarray(r) for r in results):
        import numpy
        return numpy.concatenate(results)
    return results

"""WorkerPool: the map family over a Boss, its workers and its control pipe.

Every call here builds a `Job` (state.py) with a `JobHandle` (jobs.py), hands it to the Boss
on the control pipe and waits on the handle. The pool decides nothing about what runs when.
The same maps awaited from asyncio, and the pool's notebook display, are in pool_async.py.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future

from . import state as st
from . import tracebacks
from .backends import START_METHODS, make_backend
from .boss import BossThread
from .call_options import NONE, CallOptions, check_callbacks, on_done
from .errors import describe, ended_early, interrupted
from .jobs import (STOP_WAIT, AsyncResult, CollectHandle, FunctionKeys, FutureHandle,
                   HandOver, JobHandle)
from .map_spec import MapSpec
from .messages import WorkerSetup
from .pool_async import AsyncMaps
from .reports import Ledger, Report
from .scheduling import AdaptiveChunker, JobsLimit, Scheduler
from .signals import Signal
from .sources import IterSource, ListSource
from .story import StoryEntry
from .subscriptions import ReportChanged, SignalSent, Subscriptions

_log = logging.getLogger(__name__)

DEFAULT_START_METHOD = "forkserver"
_READ_AHEAD = 16384  # items an imap may have read but not yet handed to its consumer


def _print_output(worker_id, stream, line):
    """Default sink for what workers print: the caller's own stdout/stderr, tagged. Log
    records ("log") went to the caller's logging handlers already."""
    if stream == "log":
        return
    target = sys.stderr if stream == "stderr" else sys.stdout
    target.write(f"[worker {worker_id}] {line}\n")
    target.flush()


def _func_name(func) -> str:
    inner = getattr(func, "func", func)  # functools.partial
    return f"{getattr(inner, '__module__', '')}.{getattr(inner, '__qualname__', repr(inner))}"


class _Call:
    """submit/apply_async: the function with its keyword arguments, called on positional ones."""

    def __init__(self, func, kwargs):
        self.func, self.kwargs = func, kwargs

    def __call__(self, *args):
        return self.func(*args, **self.kwargs)


class WorkerPool(AsyncMaps):
    """A pool of workers for parallel maps that you can watch and steer while they run.

    The workers are processes (started by nbpar's fork server, by fork or by spawn) or
    threads of the caller; with backend="dask", slots that run batches on a Dask cluster.
    They start with the first map or call. Each pool has a Boss, a thread of the caller that
    owns the pending work: `halt`, `resume`, `stop` and `report` reach it from any thread
    (a progress bar, a widget's buttons, your own code) while a map runs.

    The function of a map is called as ``func([worker_id,] [shared_objects,]
    [worker_state,] item)``, the leading arguments only when switched on below.

    Parameters
    ----------
    n_jobs : int, optional
        How many workers. Default: the CPU count (with backend="dask": the cluster's
        worker threads).
    start_method : {"forkserver", "fork", "spawn", "threading"}, optional
        How the workers start. Default "forkserver": forked from nbpar's own clean,
        single-threaded server, which loads the shared objects once and shares them
        copy-on-write, so the (always multi-threaded) Jupyter kernel is never forked.
        "fork" forks the caller (workers inherit everything, nothing is pickled), "spawn"
        starts a fresh interpreter per worker, "threading" runs threads of the caller.
    shared_objects : object, optional
        Handed to every call of the function (and of the hooks) before the item. They reach
        each worker once per pool, not once per task; NumPy arrays among them are put in
        shared memory, so n workers hold one copy. Default None: not passed.
    pass_worker_id : bool, default False
        Pass the worker's id (0 .. n_jobs - 1) as the first argument.
    use_worker_state : bool, default False
        Pass a dict private to each worker and kept between its tasks (a cache, a
        connection), after the shared objects.
    worker_init : callable, optional
        Called in each worker as it starts, with the leading arguments the function gets
        (no item): per-worker set-up such as loading a model into the worker state.
    worker_exit : callable, optional
        Called in each worker as it retires, with the same leading arguments; what it
        returns is in `get_exit_results()`. If it raises, the map (or `join`) raises that.
    task_timeout : float, optional
        Seconds a task may run. One running longer fails with `nbpar.TaskTimeoutError`
        naming its item, and its worker is replaced. Default None: no limit.
    max_tasks_per_worker : int, optional
        Replace a worker after that many tasks, against memory that a library leaks.
        Default None: never.
    scheduler : nbpar.Scheduler, optional
        A policy the Boss asks before it starts any task (`MaxThreadsScheduler`,
        `MaxMemoryScheduler`, `LongerFirstScheduler`, or a subclass of your own).
        Default None: every free worker takes work.
    keep_alive : bool, default False
        Keep the workers between maps and calls (worker_init runs once), so a call costs
        one round trip instead of two worker starts. By default they retire once no work is
        left and the next map starts them again.
    on_output : callable, optional
        ``on_output(worker_id, stream, line)`` gets every line the workers print (stream
        "stdout" or "stderr"; also settable as `pool.on_output`). Default: the caller's
        stdout and stderr, each line tagged "[worker N]".
    log_level : int, optional
        The level of `nbpar.get_logger()` loggers in the workers, whose records are
        handled by the caller's handlers. Default None: logging.INFO.
    backend : {None, "local", "dask"}, optional
        "dask" runs the workers as slots on a Dask cluster (give `client`). Default None:
        workers on this machine.
    client : dask.distributed.Client, cluster or str, optional
        For backend="dask": a client, a cluster object or a scheduler's address (a client
        made from an address is closed with the pool). Default None: Dask's default client.
    max_worker_memory : float, optional
        Bytes of its own memory (unique set size) past which a worker process is replaced
        after its task, as loky's memory-leak guard. Default None: no limit.
    inner_threads : int, optional
        Threads of BLAS and OpenMP (NumPy, SciPy, ...) in each worker process. Default None:
        cores // n_jobs, so n workers do not fight over the cores with n times as many
        threads.

    Raises
    ------
    ValueError, TypeError
        A bad option, named with its value.
    nbpar.SerializationError
        Under forkserver and spawn: the shared objects, worker_init or worker_exit cannot
        be pickled (naming which and why).

    Examples
    --------
    >>> with nbpar.WorkerPool(4) as pool:
    ...     squares = pool.map(square, range(100), progress_bar=True)
    """

    def __init__(self, n_jobs=None, *, start_method=None, shared_objects=None,
                 pass_worker_id=False, use_worker_state=False, worker_init=None,
                 worker_exit=None, task_timeout=None, max_tasks_per_worker=None,
                 scheduler=None, keep_alive=False, on_output=None, log_level=None, backend=None,
                 client=None, max_worker_memory=None, inner_threads=None):
        _check_backend(backend, client, start_method)
        if n_jobs is None and backend != "dask":  # Dask's default: its worker threads
            n_jobs = os.cpu_count() or 1
        if n_jobs is not None and (
                isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1):
            raise ValueError(f"n_jobs must be a whole number >= 1 (or None), got {n_jobs!r}")
        start_method = DEFAULT_START_METHOD if start_method is None else start_method
        if backend == "dask":
            start_method = "dask"  # how the workers start: shown by the widget and repr
        elif start_method not in START_METHODS:
            raise ValueError(f"unknown start_method {start_method!r}: use one of "
                             f"{', '.join(START_METHODS)}")
        for name, hook in (("worker_init", worker_init), ("worker_exit", worker_exit)):
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be callable, got {describe(hook)}")
        if task_timeout is not None and not (
                isinstance(task_timeout, (int, float)) and task_timeout > 0):
            raise ValueError(f"task_timeout must be a number of seconds > 0, got {task_timeout!r}")
        if max_tasks_per_worker is not None and not (
                isinstance(max_tasks_per_worker, int) and max_tasks_per_worker >= 1):
            raise ValueError(f"max_tasks_per_worker must be a whole number >= 1, got "
                             f"{max_tasks_per_worker!r}")
        if max_worker_memory is not None and (isinstance(max_worker_memory, bool) or not (
                isinstance(max_worker_memory, (int, float)) and max_worker_memory > 0)):
            raise ValueError(f"max_worker_memory must be a number of bytes > 0, got "
                             f"{max_worker_memory!r}")
        if inner_threads is not None and (isinstance(inner_threads, bool) or not isinstance(
                inner_threads, int) or inner_threads < 1):
            raise ValueError(f"inner_threads must be a whole number >= 1 (or None: cores / "
                             f"n_jobs), got {inner_threads!r}")
        for name, value in (("max_worker_memory", max_worker_memory),
                            ("inner_threads", inner_threads)):
            if value is not None and start_method in ("threading", "dask"):
                raise ValueError(f"{name} applies to worker processes (fork, forkserver, "
                                 f"spawn), not to start_method={start_method!r}: its workers "
                                 f"share one process")
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            raise TypeError(f"scheduler must be an nbpar.Scheduler, got {describe(scheduler)}")
        self.start_method = start_method
        self.backend = backend or "local"
        self.shared_objects = shared_objects
        self._hooks = (worker_init, worker_exit)  # the pool's own; a call may bring others
        self._setup = _SetupFactory(start_method, self._hooks, dict(
            pass_worker_id=bool(pass_worker_id), use_shared=shared_objects is not None,
            use_worker_state=bool(use_worker_state), log_level=log_level,
            report_start=task_timeout is not None and backend != "dask",
            inner_threads=_inner_threads(inner_threads, n_jobs, start_method)))
        self._job_ids = itertools.count()
        self._functions = FunctionKeys()
        self._lock = threading.Lock()
        self._closed = False
        self._subscriptions = Subscriptions(self)
        self._backend = make_backend(start_method, n_jobs, shared_objects,
                                     hooks=(worker_init, worker_exit), backend=backend,
                                     client=client, owner=weakref.ref(self))
        self.n_jobs = n_jobs = self._backend.n_workers
        self._min_batch_time = self._backend.min_batch_time
        # The Boss owns its state: the pool sends it events and reads its reports. It holds
        # nothing of the pool, so a dropped pool is collected and shut down.
        state = st.BossState(n_jobs, scheduler=scheduler, keep_alive=keep_alive,
                             task_timeout=task_timeout,
                             clock_at_start=self._setup.flags["report_start"],
                             max_tasks_per_worker=max_tasks_per_worker,
                             max_worker_memory=max_worker_memory)
        self._boss = BossThread(self._backend, state, self._setup,
                                on_output or _print_output, name=f"nbpar-pool-{id(self):x}")
        self._boss.start()
        self._finalizer = weakref.finalize(self, _shutdown, self._boss)

    # -- context manager and lifetime
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.terminate()
        else:
            self.close()
            self.join()

    def close(self):
        """Accept no new work; the workers retire once what is pending is done.

        A map or call after `close` raises RuntimeError. Follow with `join` to wait for the
        workers; the `with` block does both.
        """
        self._closed = True
        self._signal(Signal.END)

    def join(self, timeout=None):
        """Wait for the Boss and every worker to be gone, after `close` or `terminate`.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most. Default None: until they are gone.

        Raises
        ------
        Exception
            What a worker_exit raised after the last map, if it did (else it would be lost).
        """
        self._boss.join(timeout)
        if not self._boss.is_alive():
            self._finalizer.detach()
            error = self._boss.take_exit_error()
            if error is not None:
                raise error

    def terminate(self):
        """Kill every worker now and end the Boss; what was running is lost.

        The `with` block calls it when its body raises (else `close` and `join`).
        """
        self._closed = True
        self._signal(Signal.STOP_RIGHTNOW)
        self._signal(Signal.END)
        self._boss.join(STOP_WAIT)

    @property
    def on_output(self):
        """Where worker output goes: a callable (worker_id, stream, line). Settable, e.g. by
        a notebook layer routing each map's output into the cell that started it."""
        return self._boss.on_output

    @on_output.setter
    def on_output(self, sink):
        self._boss.on_output = sink if sink is not None else _print_output

    # -- control
    def halt(self):
        """Start no new task until `resume`; the running ones finish (HALT).

        Safe from any thread while a map runs in another; it acts within one batch. HALT
        lasts across maps until `resume`, `stop` or `stop(now=True)`.
        """
        self._signal(Signal.HALT)

    def resume(self):
        """Start work again after `halt` (RESUME); safe from any thread."""
        self._signal(Signal.RESUME)

    def stop(self, now=False):
        """End the running map early; safe from any thread.

        The map then raises `nbpar.StoppedError`, whose `.report` holds what finished:
        ``pool.map(func, report=err.report)`` runs only what is pending.

        Parameters
        ----------
        now : bool, default False
            False (STOP): start nothing more and let the running tasks finish. True
            (STOP_RIGHTNOW): kill the running tasks at once (their workers are replaced);
            what they were running counts as pending.
        """
        self._signal(Signal.STOP_RIGHTNOW if now else Signal.STOP)

    def send(self, signal: Signal, for_map: int | None = None):
        """Send any signal on the Boss's control pipe; safe from any thread.

        Parameters
        ----------
        signal : nbpar.Signal
            HALT, RESUME, STOP, STOP_RIGHTNOW, END, STOP_LISTENING or SEND_REPORT (see
            `nbpar.Signal`); `halt`, `resume` and `stop` are shorthands.
        for_map : int, optional
            The `job_id` of the map (from its Report) the signal is meant for. The Boss drops
            it if that map has ended by the time it arrives, so a late click never acts on
            the next map; and a HALT made for a map ends with that map.

        Returns
        -------
        nbpar.Report or None
            The report, for SEND_REPORT; else None.

        Raises
        ------
        TypeError
            `signal` is not an `nbpar.Signal`.
        """
        if not isinstance(signal, Signal):
            raise TypeError(f"expected an nbpar.Signal, got {describe(signal)}")
        if signal is Signal.SEND_REPORT:
            return self.report()
        self._signal(signal, for_map)

    def _signal(self, signal: Signal, for_map: int | None = None):
        """The one way out for signals from the caller's side: told to the signal
        subscribers, then put on the control pipe, then their "after" callables run."""
        told = SignalSent(self, signal, for_map)
        after = self._subscriptions.begin_signal(told)
        try:
            self._boss.send(signal, for_map)
        finally:
            self._subscriptions.end_signal(told, after)

    def subscribe(self, callback: Callable[[SignalSent | ReportChanged], object], *,
                  signals: bool = True, reports: bool = True) -> Callable[[], None]:
        """Call `callback` with each signal sent to this pool and with its report as it
        changes, until the returned function is called; safe from any thread.

        Signals: every signal a caller sends (`halt`, `resume`, `stop`, `send`, `close`,
        `terminate`, a widget's button, Ctrl-C on a map) is told as an `nbpar.SignalSent`
        (`.pool`, `.signal`, `.for_map`), in the sending thread, just before it reaches the
        Boss. The callback may return a callable, which is run once the Boss has the
        signal (e.g. to act only after the Boss counts the running tasks as stopped). A
        callback that raises is logged (logger "nbpar.subscriptions", DEBUG) and never keeps
        the signal from the Boss. Once `subscribe` returns, every signal sent before it has
        reached the Boss (a report asked for now reflects it) and every later one is told.

        Reports: an `nbpar.ReportChanged` (`.pool`, `.report`) first with the report as it
        is, then whenever the report differs from the last one told: another map, its status,
        total, done or failed count, the pool's HALT, a worker's state or task count. They
        are read from the Boss like `report()`, by a thread of the pool's own that runs while
        a report subscriber exists: about ten times a second while a map runs, at once when a
        map is submitted or a signal sent, and the callbacks run in that thread, one report
        at a time (keep them quick). The last one told after the pool is closed is final.

        Parameters
        ----------
        callback : callable
            Called with one `SignalSent` or `ReportChanged`; for a signal, what it returns
            is run after the Boss has the signal if it is callable.
        signals : bool, default True
            Tell the signals.
        reports : bool, default True
            Tell the report's changes.

        Returns
        -------
        callable
            ``unsubscribe()``: stops telling `callback` (again: nothing).

        Examples
        --------
        >>> seen = []
        >>> unsubscribe = pool.subscribe(seen.append, reports=False)
        >>> pool.halt(); pool.resume()
        >>> [told.signal for told in seen]
        [<Signal.HALT: 'HALT'>, <Signal.RESUME: 'RESUME'>]
        >>> unsubscribe()
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {describe(callback)}")
        return self._subscriptions.subscribe(callback, bool(signals), bool(reports))

    @staticmethod
    def current() -> WorkerPool | None:
        """The pool whose worker is the calling thread, from a task of a
        ``start_method="threading"`` pool; None anywhere else (the caller's own threads, a
        worker process). Lets code that a task calls follow its pool, e.g. with `subscribe`
        (run_job does so to steer the grid jobs that the pool's tasks start)."""
        from .backends.thread import current_owner
        owner = current_owner()
        pool = owner() if isinstance(owner, weakref.ref) else None
        return pool if isinstance(pool, WorkerPool) else None

    def is_alive(self) -> bool:
        """Whether the pool's Boss still runs: False once the pool is closed and its
        workers are gone (after `close` and `join`, `terminate`, or the `with` block)."""
        return self._boss.is_alive()

    def report(self) -> Report:
        """A snapshot of the latest map and of the workers, at any moment, from any thread.

        Returns
        -------
        nbpar.Report
            Immutable: its status, counts, results, errors, pending items and each worker's
            state stay as they were when taken, while the map goes on. A stopped map's
            report continues it: ``pool.map(func, report=pool.report())``.
        """
        return self._backend.annotate(self._boss.report())  # e.g. where each worker runs

    def debug_log(self) -> list[StoryEntry]:
        """What the pool's Boss heard and did lately, for finding out why a map hangs or
        gives a wrong answer.

        The Boss numbers every event it takes (a worker's result, a death, a signal, a new
        map, ...) and keeps its last 1000 steps: each event with the instructions it led to
        (dispatch a batch, kill or retire a worker, finish a map, ...). Only kinds and ids
        are kept (worker, batch and map ids), never results or items; report requests, which
        change nothing and come often, are left out.
        It can be read at any moment, even while the Boss is stuck. The same steps are
        logged to the logger ``"nbpar.boss"`` at DEBUG level, as they happen.

        Returns
        -------
        list of nbpar.story.StoryEntry
            Oldest first. Each entry has `stimulus_id` (the event's number), `time` (in
            `time.monotonic()` seconds), `event` and `instructions` (short texts such as
            ``"BatchDone(worker_id=1, batch_id=7)"``); ``str(entry)`` gives it as one line.
        """
        return self._boss.debug_log()

    def get_exit_results(self) -> list:
        """What `worker_exit` returned in each worker that ran it, as MPIRE's method.

        Returns
        -------
        list
            One result per retired worker that had a worker_exit, of the latest map.
        """
        return list(self.report().exit_results)

    def set_shared_objects(self, shared_objects):
        """Replace the shared objects for the next maps.

        Kept-alive workers, which hold the old ones, are retired first and replaced when
        work comes.

        Parameters
        ----------
        shared_objects : object
            The new shared objects, as for the constructor's `shared_objects` (None: none).

        Raises
        ------
        RuntimeError
            A map is running.
        nbpar.SerializationError
            They cannot be pickled (forkserver, spawn).
        """
        self._check_idle("set_shared_objects")
        prepared = self._backend.prepare(shared_objects)  # pickling errors surface here
        self.shared_objects = shared_objects
        self._setup.flags["use_shared"] = shared_objects is not None
        self._boss.reshare(prepared)

    def _check_idle(self, what):
        if self._boss.report().running_maps:
            raise RuntimeError(f"{what} cannot be called while a map runs")

    # -- the map family
    def map(self, func, iterable=None, *, chunk_size=None, progress_bar=False,
            iterable_len=None, limit=None, report=None, checkpoint=None,
            memory=None, duration=None, **options):
        """Call `func` on every item in parallel; the results as a list, in input order.

        The items travel in batches sized from measured task times. The call blocks until
        the map ends; from another thread, `halt`, `resume`, `stop` and `report` steer and
        watch it. In a notebook, ``await pool.map_async(...)`` keeps the widget's buttons live.

        Parameters
        ----------
        func : callable
            Called as ``func([worker_id,] [shared_objects,] [worker_state,] item)``. It may
            be defined anywhere, a notebook cell included (sent by value when needed).
        iterable : iterable, optional
            The items, read whole at the start. Left out when continuing with `report`.
        chunk_size : int, optional
            Items per batch. Default None: adapted so that a batch takes about 20 ms (tiny
            tasks go in few messages, slow ones one at a time, and HALT bites within one).
        progress_bar : bool, default False
            Draw tqdm's progress bar (its notebook form in Jupyter) while the map runs.
        iterable_len : int, optional
            The number of items, checked against what the iterable gives.
        limit : nbpar.JobsLimit, optional
            A cap on how many of this map's tasks run at once, shared by every map that
            names the same limit (also in other threads).
        report : nbpar.Report, optional
            The report of a stopped or failed map of the same function: run only what it
            left pending or failed, and return the full list.
        checkpoint : str or os.PathLike, optional
            A file recording each result as it arrives; the same map with the same
            checkpoint, after an error, a STOP, a crash or a kernel restart, runs only what
            is missing. It holds pickles: load only checkpoints you trust.
        memory : callable, optional
            ``memory(item)``: the bytes its task needs, for `MaxMemoryScheduler`.
        duration : callable, optional
            ``duration(item)``: its relative length, for `LongerFirstScheduler`.
        **options
            This call's own settings, in place of the pool's: `worker_init`,
            `worker_exit`, `task_timeout`, `worker_lifespan` (tasks a worker runs before it
            is replaced), `max_tasks_active` (items in flight at most), `n_splits` (the
            items in about that many batches). And what a failure does: `retries` (run a
            failed item up to that many more times, default 0), `retry_on` (the exception
            types retried, default Exception; also WorkerDiedError, TaskTimeoutError),
            `on_error` ("raise", the default, stops the map at its first error;
            "collect" puts a `TaskError`, or `default`, in the failed item's place and
            finishes the map).

        Returns
        -------
        list
            One result per item, in input order.

        Raises
        ------
        Exception
            What `func` raised, of its own type, naming the item, with the worker's
            traceback as its ``__cause__``; what had finished stays in `report()`.
        nbpar.StoppedError
            The map was stopped; ``pool.map(func, report=err.report)`` continues it.
        nbpar.WorkerDiedError, nbpar.TaskTimeoutError, nbpar.SerializationError
            A worker died, a task ran past its timeout, or an item or a result could not
            be pickled; each names the item.
        KeyboardInterrupt
            Ctrl-C or Jupyter's interrupt: the running tasks are stopped at once and what
            finished is kept in `report()` (and the error's `.report`); its message says,
            in one line, how to continue.
        """
        return self._run_list(MapSpec(
            "map", func, iterable, chunk_size=chunk_size, progress_bar=progress_bar,
            iterable_len=iterable_len, limit=limit, report=report, checkpoint=checkpoint,
            memory=memory, duration=duration, options=options))

    def starmap(self, func, iterable=None, *, chunk_size=None, progress_bar=False,
                iterable_len=None, limit=None, report=None, checkpoint=None,
                memory=None, duration=None, **options):
        """`map` for functions of several arguments: each item is a tuple, unpacked.

        ``pool.starmap(pow, [(2, 3), (5, 2)])`` returns ``[8, 25]``. (`map` never unpacks:
        a tuple item stays one argument.)

        Parameters
        ----------
        func, iterable, chunk_size, progress_bar, iterable_len, limit, report, checkpoint, memory, duration, **options
            As for `map`, but `func` is called as ``func(*leading, *item)``.

        Returns
        -------
        list
            One result per item, in input order. Raises as `map`.
        """  # noqa: E501 - numpydoc names shared parameters on one line
        return self._run_list(MapSpec(
            "starmap", func, iterable, star=True, chunk_size=chunk_size,
            progress_bar=progress_bar, iterable_len=iterable_len, limit=limit, report=report,
            checkpoint=checkpoint, memory=memory, duration=duration, options=options))

    def map_unordered(self, func, iterable=None, *, chunk_size=None, progress_bar=False,
                      iterable_len=None, limit=None, report=None, checkpoint=None,
                      memory=None, duration=None, **options):
        """`map`, with the results in the order they finished (not in input order).

        Parameters
        ----------
        func, iterable, chunk_size, progress_bar, iterable_len, limit, report, checkpoint, memory, duration, **options
            As for `map`.

        Returns
        -------
        list
            One result per item, in completion order. Raises as `map`.
        """  # noqa: E501 - numpydoc names shared parameters on one line
        return self._run_list(MapSpec(
            "map_unordered", func, iterable, ordered=False, chunk_size=chunk_size,
            progress_bar=progress_bar, iterable_len=iterable_len, limit=limit, report=report,
            checkpoint=checkpoint, memory=memory, duration=duration, options=options))

    def imap(self, func, iterable, *, chunk_size=None, progress_bar=False,
             iterable_len=None, limit=None, memory=None, duration=None, **options):
        """`map` as an iterator: each result in input order, as soon as it and those
        before it are there.

        The map starts when the iterator is first read; dropping the iterator early
        (``break``) cancels the rest. Its results go to you, not to `report()`, so an
        imap cannot be continued with `report=`.

        Parameters
        ----------
        func, iterable, chunk_size, progress_bar, iterable_len, limit, memory, duration, **options
            As for `map`. The iterable is read lazily, a bounded way ahead of the
            consumer, so it may be endless or larger than memory; `iterable_len` gives
            the progress bar its total when the iterable has no len().

        Yields
        ------
        object
            The results, in input order. An input that raises midway yields every result
            of what was read before it, then raises the input's own error; otherwise
            raises as `map`.
        """
        return self._run_lazy(MapSpec(
            "imap", func, iterable, lazy=True, chunk_size=chunk_size, progress_bar=progress_bar,
            iterable_len=iterable_len, limit=limit, memory=memory, duration=duration,
            options=options))

    def imap_unordered(self, func, iterable, *, chunk_size=None, progress_bar=False,
                       iterable_len=None, limit=None, memory=None, duration=None, **options):
        """`imap`, with each result as soon as it finishes, in any order.

        Parameters
        ----------
        func, iterable, chunk_size, progress_bar, iterable_len, limit, memory, duration, **options
            As for `imap` (the iterable is read lazily there too).

        Yields
        ------
        object
            The results, in completion order. Raises as `imap`.
        """
        return self._run_lazy(MapSpec(
            "imap_unordered", func, iterable, ordered=False, lazy=True, chunk_size=chunk_size,
            progress_bar=progress_bar, iterable_len=iterable_len, limit=limit, memory=memory,
            duration=duration, options=options))

    def apply_async(self, func, args=(), kwargs=None, *, callback=None, error_callback=None,
                    **options) -> AsyncResult:
        """One call, ``func(*args, **kwargs)``, in a worker; returns at once.

        As multiprocessing's and MPIRE's `apply_async`. Each call is a job of its own, so
        many may be in flight (for many calls of one function, a map is faster).

        Parameters
        ----------
        func : callable
            Called with the pool's leading arguments, if any, then `args` and `kwargs`.
        args : tuple, default ()
            Positional arguments.
        kwargs : dict, optional
            Keyword arguments.
        callback : callable, optional
            ``callback(result)`` when the call succeeds, in the Boss's thread (keep it
            quick: the Boss waits for it).
        error_callback : callable, optional
            ``error_callback(exception)`` when it fails, in the Boss's thread.
        **options
            As for `map`: `worker_init`, `worker_exit`, `task_timeout`,
            `worker_lifespan`, `retries`, `retry_on`.

        Returns
        -------
        nbpar.AsyncResult
            ``.get(timeout)`` gives the result or raises the call's error.
        """
        opts = CallOptions.parse(options, "apply_async")
        check_callbacks(callback, error_callback)
        future = self._single(func, args, kwargs or {}, opts)
        on_done(future, callback, error_callback)
        return AsyncResult(future)

    def submit(self, func, /, *args, **kwargs) -> Future:
        """One call, ``func(*args, **kwargs)``, in a worker, as a concurrent.futures.Future.

        As `ProcessPoolExecutor.submit`; keywords named ``func`` or ``self`` reach the
        function too.

        Parameters
        ----------
        func : callable
            Called with the pool's leading arguments, if any, then `args` and `kwargs`.
        *args
            Positional arguments.
        **kwargs
            Keyword arguments.

        Returns
        -------
        concurrent.futures.Future
            Its ``result()`` is the call's result, or raises its error (a dead worker:
            `nbpar.WorkerDiedError`).
        """
        return self._single(func, args, kwargs, NONE)

    def _single(self, func, args, kwargs, opts) -> Future:
        key = self._functions.key(func, _check_func)
        future: Future = Future()
        call = func
        if kwargs:
            call = _Call(func, kwargs)
            key = self._functions.key(call)
        items = [args]  # (one list for the input and the ledger: an object less per call)
        job = self._new_job(call, ListSource(items), total=1, streaming=True, star=True,
                            items=items, handle=FutureHandle(call, future, self._functions),
                            func_key=key)
        job.single = True
        self._configure(job, opts)
        self._submit(job)
        return future

    def _configure(self, job, opts):
        """A call's own settings (call_options.py); its worker hooks replace the workers'."""
        if opts is not NONE:
            opts.apply(job)
            if job.chunker.fixed is None and opts.n_splits is not None and job.total:
                job.chunker = AdaptiveChunker(opts.chunk_size(None, job.total),
                                              self._min_batch_time)
        self._use_hooks(opts)

    def _use_hooks(self, opts):
        """Workers run the hooks of the call at hand (its own, else the pool's). A call with
        other hooks than the workers hold has them retired first, as for new shared objects:
        what runs finishes, then new workers start with the new hooks (and take whatever
        else is waiting)."""
        init, exit_ = self._hooks
        wanted = (opts.worker_init or init, opts.worker_exit or exit_)
        if self._setup.holds(*wanted):
            return
        self._setup.hooks = wanted  # read by the Boss when it starts a worker
        if self._backend.use_hooks(wanted):  # process workers get them in the pool's bundle
            self._boss.reshare(self._backend.prepare(self.shared_objects))  # retire them
        elif any(w.alive for w in self._boss.report().workers):  # (a dead one restarts with these)
            self._boss.reshare(self._backend.prepare(self.shared_objects))

    # -- building jobs
    def _job(self, spec: MapSpec) -> st.Job:
        """The one way a map call becomes a job, whichever face made it (see map_spec.py)."""
        opts = CallOptions.parse(spec.options, spec.name)
        if spec.lazy:
            job = self._stream_job(spec.func, spec.iterable, spec.chunk_size,
                                   spec.iterable_len, spec.limit, spec.star)
        else:
            job = self._map_job(spec.func, spec.iterable, spec.chunk_size, spec.iterable_len,
                                spec.limit, spec.report, star=spec.star,
                                checkpoint=spec.checkpoint)
        _declare(job, spec.memory, spec.duration)
        self._configure(job, opts)
        return job

    def _map_job(self, func, iterable, chunk_size, iterable_len, limit, report, star,
                 checkpoint=None):
        _check_func(func)
        _check_chunk_size(chunk_size)
        if report is not None:
            if checkpoint is not None:
                raise ValueError("give report= or checkpoint=, not both: a checkpoint "
                                 "already knows what is missing")
            return self._continue_job(func, report, chunk_size, limit, star)
        if iterable is None:
            raise TypeError("map needs an iterable (or report= to continue a stopped map)")
        items = list(iterable)
        _check_iterable_len(iterable_len, len(items))
        if checkpoint is not None:
            return self._checkpoint_job(func, items, checkpoint, chunk_size, limit, star)
        return self._new_job(func, ListSource(items), total=len(items), streaming=False,
                             star=star, items=items, chunk_size=chunk_size, limit=limit)

    def _checkpoint_job(self, func, items, path, chunk_size, limit, star):
        """A map that runs only what its checkpoint lacks; results stream back to be stored."""
        from .checkpoint import Checkpoint
        store = Checkpoint(path, func, items)
        try:
            prior = store.done()
            missing = [i for i in range(len(items)) if i not in prior]
            store.begin(len(missing))
        except BaseException:
            store.close()
            raise
        job = self._new_job(func, ListSource([items[i] for i in missing], missing),
                            total=len(items), streaming=True, star=star, items=items,
                            prior=prior, chunk_size=chunk_size, limit=limit)
        job.handle.checkpoint = store
        return job

    def _continue_job(self, func, report, chunk_size, limit, star):
        if not isinstance(report, Report):
            raise TypeError(f"report must be an nbpar.Report, got {describe(report)}")
        name = _func_name(func)
        if report.func_name and report.func_name != name:
            raise ValueError(f"this report is from a map of {report.func_name}, not of {name}: "
                             f"continue it with the same function")
        if report.rest is not None:
            raise ValueError("this report is from a map whose results went to its caller as "
                             "they came (imap, Executor.map, nbpar.Pool's maps), so it cannot "
                             "be continued as a list")
        pairs = report._unfinished_pairs()  # failed items run again, with the pending ones
        return self._new_job(func, ListSource([p[1] for p in pairs], [p[0] for p in pairs]),
                             total=report.total, streaming=False, star=star, items=dict(pairs),
                             prior=report.results, chunk_size=chunk_size, limit=limit)

    def _new_job(self, func, source, *, total, streaming, star=False, items=None,
                 prior=None, chunk_size=None, limit=None, handle=None, keep_results=True,
                 func_key=None):
        _check_limit(limit)
        ledger = Ledger(total, items, prior, keep_results)
        job = st.Job(next(self._job_ids), func, source, ledger, total=total, star=star,
                     streaming=streaming, limit=limit,
                     chunker=AdaptiveChunker(chunk_size, self._min_batch_time),
                     func_name=_func_name(func),
                     func_key=self._functions.key(func) if func_key is None else func_key)
        job.handle = handle or JobHandle(func, streaming, self._functions)
        return job

    def _stream_job(self, func, iterable, chunk_size, iterable_len, limit, star=False):
        """An iterator map's job (imap, and its async form): a lazy input read a bounded way
        ahead of the consumer; submitted when iterated."""
        _check_func(func)
        _check_chunk_size(chunk_size)
        _check_iterable_len(iterable_len)
        total = iterable_len
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        source = IterSource(iterable)
        job = self._new_job(func, source, total=total, streaming=True, star=star,
                            chunk_size=chunk_size, limit=limit, keep_results=False)
        job.ledger.rest = source.iterator
        job.max_ahead = max(_READ_AHEAD, 8 * self.n_jobs * (chunk_size or 1))
        return job

    def _eager(self, func, items, *, star, chunk_size=None, ordered=True, deadline=None,
               progress_bar=False):
        """The results of a map over a list already read, as an iterator: the map is handed
        to the Boss now and runs to its end whether or not the iterator is read (as
        concurrent.futures' and multiprocessing's maps do); neither the items nor the results
        are kept by the pool once handed over (the layers for those APIs, executor.py and
        mp.py, use it)."""
        job = self._eager_job(func, items, star=star, chunk_size=chunk_size)
        return self._iterate(job, ordered, progress_bar, deadline)

    def _eager_job(self, func, items, *, star, chunk_size=None):
        """`_eager`'s job, handed to the Boss; its results stream to `job.handle`."""
        _check_func(func)
        _check_chunk_size(chunk_size)
        job = self._new_job(func, IterSource(items), total=len(items), streaming=True,
                            star=star, chunk_size=chunk_size, keep_results=False)
        job.ledger.rest = job.source.iterator  # its report cannot continue it (as for imap)
        self._submit(job)
        return job

    def _collect(self, func, items, *, star, chunk_size=None) -> tuple:
        """A map over a list already read whose ordered results land in a Future, as one
        list (multiprocessing's map_async; mp_pool.py). The map is handed to the Boss now;
        the pool keeps neither its items nor its results. Returns (job, future)."""
        _check_func(func)
        _check_chunk_size(chunk_size)
        future: Future = Future()
        future.set_running_or_notify_cancel()
        job = self._new_job(func, IterSource(items), total=len(items), streaming=True,
                            star=star, chunk_size=chunk_size, keep_results=False,
                            handle=CollectHandle(func, future, len(items), self._functions))
        job.ledger.rest = job.source.iterator  # its report cannot continue it (as for imap)
        self._submit(job)
        return job, future

    # -- the blocking faces' runners (the awaited ones are in pool_async.py)
    def _run_list(self, spec: MapSpec) -> list:
        """Run a list map to its end in the caller's thread; its results, as `spec` orders."""
        job = self._job(spec)
        self._run(job, spec.progress_bar)
        return spec.results(job.ledger)

    def _run_lazy(self, spec: MapSpec):
        """Hand a lazy map to the Boss now; an iterator over its results, as they come."""
        job = self._job(spec)
        self._submit(job)
        return self._iterate(job, spec.ordered, spec.progress_bar)

    def _iterate(self, job, ordered, progress_bar, deadline=None):
        handle = job.handle
        bar = self._progress(job, progress_bar)
        finished = False
        hand_over = HandOver(self._boss, job, ordered)
        try:
            for indices, results in handle.chunks(deadline):
                ready = hand_over.ready(indices, results)
                yield from ready
                hand_over.taken(len(ready))
            finished = True
        except KeyboardInterrupt:
            self._interrupt(handle)
            raise
        finally:
            if not finished:
                hand_over.abandon()
            if bar is not None:
                bar.close(handle.report if handle.done else None)

    # -- running
    def _submit(self, job):
        if self._closed:
            raise RuntimeError("the pool is closed: it takes no new work")
        self._boss.submit(job)
        self._subscriptions.poke()  # a report subscriber hears of the new map at once

    def _run(self, job, progress_bar=False):
        handle = job.handle
        store = getattr(handle, "checkpoint", None)
        # the bar is drawn before the Boss gets the map: its first draw then takes no time
        # from the Boss's busiest moment (a map's first batches)
        bar = self._progress(job, progress_bar, thread=store is not None)
        try:
            self._submit(job)
        except BaseException:
            if store is not None:
                store.close()
            if bar is not None:
                bar.close()
            raise
        self._follow(job, bar, store)
        if handle.error is not None:
            raise handle.error

    def _follow(self, job, bar=None, store=None):
        """Wait in the caller's thread for a submitted map to end, drawing its bar (closed
        at the end) or storing its results; Ctrl-C stops it at once."""
        handle = job.handle
        try:
            if store is None and bar is None:
                handle.wait()
            elif store is None:
                bar.follow(handle)  # the bar draws in this thread while it waits
            else:
                self._store_results(job, store)
        except KeyboardInterrupt:
            self._interrupt(handle)
            raise _interrupted(job, handle.report if handle.done else self.report(),
                               store) from None
        finally:
            if store is not None:
                store.close()
            if bar is not None:
                bar.close(handle.report if handle.done else None)

    def _store_results(self, job, store):
        """Write each delivered result to the checkpoint as it arrives (caller's thread)."""
        try:
            for indices, results in job.handle.chunks():
                store.record(indices, results, job.ledger.items_by_index)
        except Exception:
            if not job.handle.done:  # a result that cannot be stored: stop the map here
                self._boss.cancel(job.id)
                job.handle.wait(STOP_WAIT)
            raise  # that error (or the map's own, which chunks() raised) is what the caller sees

    def _interrupt(self, handle):
        """Ctrl-C / Jupyter's interrupt: kill the running tasks now, keep what finished."""
        self._signal(Signal.STOP_RIGHTNOW)
        handle.wait(STOP_WAIT)

    def _progress(self, job, progress_bar, thread=True):
        if not progress_bar:
            return None
        from .ui.progress import ProgressBar
        # what a continued map had done is known here: no report round trip to the Boss
        return ProgressBar(self, job.total, initial=job.ledger.done, thread=thread)

    def __repr__(self):
        return (f"WorkerPool(n_jobs={self.n_jobs}, start_method={self.start_method!r}, "
                f"status={self.report().status!r})")


class _SetupFactory:
    """What each new worker is told about its pool. Threads get the hooks as they are, Dask
    pickled once; worker processes get them with the shared objects (backends/process.py),
    so the setup carries none."""

    def __init__(self, start_method, hooks, flags):
        self.start_method = start_method
        self.hooks = hooks
        self.flags = flags
        self._encoded: tuple | None = None

    def holds(self, init, exit_) -> bool:
        held = self.hooks
        return held[0] is init and held[1] is exit_

    def __call__(self, worker_id) -> WorkerSetup:
        hooks, encoded = self._encoded or (None, None)
        if hooks is not self.hooks:  # (the caller may have given new hooks since)
            hooks = self.hooks
            if self.start_method == "threading":
                encoded = hooks
            elif self.start_method in ("fork", "forkserver", "spawn"):
                encoded = (None, None)  # they travel in the pool's bundle (bundle.py)
            else:
                encoded = tuple(tracebacks.dumps_by_value(h) if h is not None else None
                                for h in hooks)
            self._encoded = (hooks, encoded)
        init, exit_ = encoded
        return WorkerSetup(worker_id, worker_init=init, worker_exit=exit_, progress=None,
                           **self.flags)


def _interrupted(job, report, store) -> KeyboardInterrupt:
    """What an interrupted map raises: a KeyboardInterrupt with one line saying how far it
    got and the call that continues it (in IPython, that line alone)."""
    if store is not None:
        resume = "the same call: its checkpoint keeps what finished"
    else:
        resume = f"pool.{'starmap' if job.star else 'map'}(func, report=pool.report())"
    return interrupted(ended_early(report, "interrupted", resume), report)


def _check_func(func):
    if not callable(func):
        raise TypeError(f"func must be callable, got {describe(func)} "
                        f"(a {type(func).__name__})")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(f"func {_func_name(func)} is a generator function: each call would "
                        f"return an unconsumed generator; wrap it, e.g. lambda x: list(f(x))")
    if inspect.iscoroutinefunction(func):
        raise TypeError(f"func {_func_name(func)} is a coroutine function: each call would "
                        f"return an unawaited coroutine; wrap it with asyncio.run")


def _inner_threads(inner_threads, n_jobs, start_method):
    """BLAS/OpenMP threads per worker process: by default as joblib does, so that n_jobs x
    threads <= cores (a pool of 8 on 8 cores runs each worker's NumPy single-threaded,
    instead of 64 threads fighting for 8 cores). Threads and Dask workers are not capped:
    a cap would act on the whole process they share."""
    if start_method in ("threading", "dask"):
        return None
    if inner_threads is None:
        inner_threads = max(1, (os.cpu_count() or 1) // max(1, n_jobs or 1))
    return inner_threads


def _check_backend(backend, client, start_method):
    if backend not in (None, "local", "dask"):
        raise ValueError(f"unknown backend {backend!r}: use 'dask' (or None for workers on "
                         f"this machine)")
    if backend == "dask" and start_method is not None:
        raise ValueError(f"start_method={start_method!r} does not apply to backend='dask': "
                         f"Dask starts its own workers")
    if client is not None and backend != "dask":
        raise ValueError("client= is for backend='dask': pass backend='dask' as well")


def _declare(job, memory, duration):
    """What a map says of its items for schedulers: bytes and seconds per item."""
    for name, value in (("memory", memory), ("duration", duration)):
        if value is not None and not callable(value):
            raise TypeError(f"{name}= must be a function of the item, got {describe(value)}")
    job.memory, job.duration = memory, duration


def _check_limit(limit):
    if limit is not None and not isinstance(limit, JobsLimit):
        raise TypeError(f"limit must be an nbpar.JobsLimit, got {describe(limit)}")


def _check_iterable_len(iterable_len, actual=None):
    if iterable_len is None:
        return
    if isinstance(iterable_len, bool) or not isinstance(iterable_len, int) or iterable_len < 0:
        raise ValueError(f"iterable_len must be a whole number >= 0, got {iterable_len!r}")
    if actual is not None and actual != iterable_len:
        raise ValueError(f"iterable_len={iterable_len}, but the iterable gave {actual} items")


def _check_chunk_size(chunk_size):
    if chunk_size is not None and (isinstance(chunk_size, bool)
                                   or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a whole number >= 1 (or None), got "
                         f"{chunk_size!r}")


def _shutdown(boss):
    """A pool dropped without close(): end its Boss and workers anyway."""
    boss.send(Signal.STOP_RIGHTNOW)
    boss.send(Signal.END)
    if not boss.in_boss_thread():
        boss.join(STOP_WAIT)

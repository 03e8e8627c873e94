"""joblib's parallel backend "nbpar": scikit-learn's `n_jobs` on an nbpar pool.

    steer = nbpar.register_joblib()
    with joblib.parallel_config(backend="nbpar", n_jobs=2):
        GridSearchCV(model, grid, n_jobs=-1).fit(X, y)   # the widget (or tqdm bar) shows it
    # from another thread, meanwhile: steer.halt(), steer.resume(), steer.stop()

Built on joblib's public backend API (`ParallelBackendBase`, `AutoBatchingMixin`,
`register_parallel_backend`): each `Parallel` call gets a kept-alive `WorkerPool` of its own
(taken in `configure`, given back in `terminate`: kept for the next call, as loky keeps
its workers, until `close()`), and each batch of tasks joblib dispatches is one
`pool.submit`. joblib sizes the batches itself from measured batch times, as for loky.

A `JoblibRun` is the view of one `Parallel` call: the pool's workers and signals, with the
call's own counts of tasks dispatched and finished. The widget and the tqdm bar follow it
as they follow a pool, and its buttons reach the pool. STOP lets the running tasks finish and
fails every batch not yet started, and joblib's call ends with `nbpar.StoppedError` saying how
many tasks (for GridSearchCV: fits) finished; joblib has no way to continue a call, so what
finished is counted, not kept (see the README).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures

from joblib.parallel import (AutoBatchingMixin, FallbackToBackend, ParallelBackendBase,
                             SequentialBackend, register_parallel_backend)

from ..errors import StoppedError
from ..pool import WorkerPool
from ..reports import Report
from ..signals import Signal
from .views import show

NAME = "nbpar"


class JoblibRun:
    """One joblib `Parallel` call on its pool, as the widget, the tqdm bar and steering code
    see it: `report()`, `send(signal)`, `halt()`, `resume()`, `stop(now=False)`."""

    def __init__(self, pool: WorkerPool):
        self.pool = pool
        self.n_jobs = pool.n_jobs
        self.start_method = pool.start_method
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._ended: float | None = None
        self._status = "running"
        self.stopping: Signal | None = None
        self.dispatched = 0  # tasks handed to the pool
        self.done = 0        # tasks finished
        self.failed = 0      # batches that raised
        self._inflight: set = set()
        self._stopped_error: StoppedError | None = None

    # -- what the views and the caller's threads use
    def report(self) -> Report:
        """The pool's snapshot (its workers), with this call's own counts and status."""
        workers = self.pool.report().workers
        with self._lock:
            end = self._ended if self._ended is not None else time.monotonic()
            total = self.dispatched if self._ended is not None else None
            return Report(self._status, total, self.done, self.failed, end - self._started,
                          workers, func_name="joblib.Parallel", job_id=id(self))

    def send(self, signal: Signal):
        with self._lock:
            if signal in (Signal.STOP, Signal.STOP_RIGHTNOW) and self._ended is None:
                self.stopping = signal
            elif signal is Signal.HALT and self._status == "running":
                self._status = "halted"
            elif signal is Signal.RESUME and self._status == "halted":
                self._status = "running"
        return self.pool.send(signal)

    def halt(self):
        self.send(Signal.HALT)

    def resume(self):
        self.send(Signal.RESUME)

    def stop(self, now=False):
        self.send(Signal.STOP_RIGHTNOW if now else Signal.STOP)

    @property
    def on_output(self):
        return self.pool.on_output

    @on_output.setter
    def on_output(self, sink):
        self.pool.on_output = sink

    def is_alive(self) -> bool:
        """Whether the call still runs (a view of an ended call draws its final state)."""
        return self._ended is None

    # -- what the backend does
    def submit(self, batch, callback) -> Future:
        n = len(batch) if hasattr(batch, "__len__") else 1
        with self._lock:
            refused = self.stopping is not None
            first = self.dispatched
            if not refused:
                self.dispatched += n
        if refused:  # STOP was sent: nothing more starts, this batch fails as stopped
            future: Future = Future()
            future.set_running_or_notify_cancel()
            future.set_exception(StoppedError("stopped before it started"))
        else:
            future = self.pool.submit(_Tasks(batch, first, n))
            with self._lock:
                self._inflight.add(future)
        future.add_done_callback(lambda f: self._count(f, n))
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def _count(self, future, n):
        with self._lock:
            self._inflight.discard(future)
            if future.cancelled():
                return
            error = future.exception()
            if error is None:
                self.done += n
            elif not isinstance(error, StoppedError):
                self.failed += 1

    def result(self, future, timeout=None):
        """A batch's results, or the call's StoppedError once STOP was sent."""
        try:
            return future.result(timeout)
        except StoppedError:
            raise self.stopped_error() from None

    def stopped_error(self) -> StoppedError:
        """The one StoppedError of this call; its message is brought up to date at the end."""
        with self._lock:
            if self._stopped_error is None:
                self._stopped_error = StoppedError("")
            self._stopped_error.args = (self._stopped_message(),)
            return self._stopped_error

    def _stopped_message(self):
        how = "STOP_RIGHTNOW" if self.stopping is Signal.STOP_RIGHTNOW else "STOP"
        return (f"the joblib call was stopped ({how}) after {self.done} of its "
                f"{self.dispatched} dispatched tasks had finished (for GridSearchCV and "
                f"cross_val_score, each task is one fit); joblib cannot continue a call: "
                f"run it again")

    def abort(self):
        """joblib gives up on the call (an error, or STOP): under STOP the running batches
        finish (their fits count), otherwise they are killed now."""
        if self.stopping is None:
            self.pool.stop(now=True)
        with self._lock:
            inflight = list(self._inflight)
        wait_futures(inflight, timeout=None if self.stopping is Signal.STOP else 10)
        self.end(error=True)
        if self._stopped_error is not None:
            self.stopped_error()  # the final count
            self._stopped_error.report = self.report()

    def end(self, error=False):
        with self._lock:
            if self._ended is not None:
                return
            self._ended = time.monotonic()
            self._status = ("stopped" if self.stopping is not None else
                            "failed" if error or self.failed else "finished")


class _Tasks:
    """A batch joblib dispatched, run in a worker; what it raises is noted with the tasks it
    held, counted in the call's input order (joblib dispatches in that order)."""

    def __init__(self, batch, first, n):
        self.batch, self.first, self.n = batch, first, n

    def __call__(self):
        try:
            return self.batch()
        except Exception as exc:
            tasks = (f"task {self.first}" if self.n == 1 else
                     f"one of tasks {self.first}-{self.first + self.n - 1}")
            exc.add_note(f"nbpar: raised by {tasks} of this joblib call (in input order)")
            raise

    def __repr__(self):
        return f"<joblib tasks {self.first}-{self.first + self.n - 1}>"


class NbparBackend(AutoBatchingMixin, ParallelBackendBase):
    """The joblib backend: batches of tasks as single calls on a kept-alive nbpar pool."""

    supports_retrieve_callback = True
    supports_timeout = True
    supports_return_generator = True
    default_n_jobs = -1

    def __init__(self, nesting_level=None, inner_max_num_threads=None, *, runs=None,
                 progress_bar=True, **pool_options):
        super().__init__(nesting_level=nesting_level,
                         inner_max_num_threads=inner_max_num_threads)
        self.runs = runs if runs is not None else JoblibRuns()
        self.progress_bar = progress_bar
        self.pool_options = pool_options
        self.run: JoblibRun | None = None
        self._view = None

    def effective_n_jobs(self, n_jobs):
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            n_jobs = self.default_n_jobs
        if n_jobs < 0:
            from os import cpu_count
            n_jobs = max((cpu_count() or 1) + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, **backend_kwargs):
        n_jobs = self.effective_n_jobs(n_jobs)
        self.parallel = parallel
        if n_jobs == 1:  # as loky does: one job runs in the caller, no pool
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        if self.run is None or not self.run.is_alive():
            self.run = JoblibRun(self.runs.pool_for(n_jobs, self.pool_options))
            self.runs.current = self.run
        return n_jobs

    def start_call(self):
        if self.progress_bar and self.run is not None:
            self._view = show(self.run, unit="task")

    def stop_call(self):
        if self.run is not None:
            self.run.end()
        if self._view is not None:
            self._view.close()
            self._view = None

    def submit(self, func, callback=None):
        return self.run.submit(func, callback)

    def retrieve_result_callback(self, out):
        return self.run.result(out)

    def retrieve_result(self, out, timeout=None):
        return self.run.result(out, timeout)

    def abort_everything(self, ensure_ready=True):
        run = self.run
        if run is None:
            return
        run.abort()
        if not ensure_ready:
            self.terminate()

    def terminate(self):
        run, self.run = self.run, None
        if run is not None:
            run.end()
            self.runs.release(run.pool)
        self.reset_batch_stats()

    def get_nested_backend(self):
        # a task's own n_jobs (a RandomForest inside a grid search) runs in its worker:
        # one core each, as the workers already use them all
        nesting_level = (self.nesting_level or 0) + 1
        return SequentialBackend(nesting_level=nesting_level), None


class JoblibRuns:
    """What `register_joblib()` returns: the joblib calls made on the backend, for steering
    from another thread. `current` is the running call (or the last one); `report()`,
    `halt()`, `resume()`, `stop(now=False)` act on it."""

    def __init__(self, keep_workers=True):
        self.current: JoblibRun | None = None
        self.keep_workers = keep_workers
        self._pool: WorkerPool | None = None
        self._key = None
        self._lock = threading.Lock()

    def pool_for(self, n_jobs, options) -> WorkerPool:
        """A call's pool: the kept one when it fits (its workers have imported the call's
        libraries already, as loky's reused workers have), else a new one."""
        key = (n_jobs, tuple(sorted(options.items(), key=lambda kv: kv[0])))
        with self._lock:
            kept, self._pool = self._pool, None
            if kept is not None and self._key == key:
                return kept
        if kept is not None:
            _close(kept)
        self._key = key
        return WorkerPool(n_jobs, keep_alive=True, **options)

    def release(self, pool):
        """A call is over: keep its pool for the next one, or close it."""
        if self.keep_workers:
            with self._lock:
                if self._pool is None:
                    self._pool, pool = pool, None
        if pool is not None:
            _close(pool)

    def close(self):
        """Close the kept workers (the next call starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            _close(pool)

    def _run(self) -> JoblibRun:
        run = self.current
        if run is None:
            raise RuntimeError("no joblib call has run on the 'nbpar' backend yet")
        return run

    def report(self) -> Report:
        run = self.current
        return run.report() if run is not None else Report("idle", 0, 0, 0, 0.0)

    def halt(self):
        self._run().halt()

    def resume(self):
        self._run().resume()

    def stop(self, now=False):
        self._run().stop(now)


def _close(pool):
    pool.close()
    pool.join()


def register(progress_bar=True, keep_workers=True, **pool_options) -> JoblibRuns:
    """Register the joblib backend "nbpar"; `pool_options` go to each call's WorkerPool
    (start_method, task_timeout, ...). With keep_workers, the workers stay for the next call
    (as loky's do) until `close()` on the handle returned: the steering handle of its calls."""
    if "keep_alive" in pool_options or "n_jobs" in pool_options:
        raise TypeError("n_jobs comes from joblib (parallel_config or the estimator's "
                        "n_jobs) and each call's pool is kept alive for its batches: pass "
                        "neither to register_joblib")
    runs = JoblibRuns(keep_workers)

    def factory(nesting_level=None, inner_max_num_threads=None, **kwargs):
        options = {**pool_options, **kwargs}
        bar = options.pop("progress_bar", progress_bar)
        return NbparBackend(nesting_level, inner_max_num_threads, runs=runs,
                            progress_bar=bar, **options)

    register_parallel_backend(NAME, factory)
    return runs

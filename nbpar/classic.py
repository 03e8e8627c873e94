"""The instruction-level API (taylorism style): Worker classes known by the instructions
they take, and a Boss that hands instruction sets out to them.

    class Sleeper(nbpar.Worker):
        instructions = ("seconds",)              # required
        defaults = {"greeting": "hello"}         # optional, with default values
        def task(self, seconds, greeting):
            time.sleep(seconds)
            return f"{greeting} after {seconds} s"

    boss = nbpar.Boss()
    boss.set_instructions(dict(greeting="hi"), dict(seconds=[3, 1, 2]))
    boss.make_them_work()
    boss.wait_till_finished()
    boss.get_report().workers_report

This is not a second engine: the Boss owns a kept-alive WorkerPool, and each instruction set is
one call `_work(WorkerClass, name, instructions)` submitted to it, so the pool's Boss thread,
state machine, scheduler, signals, crash handling and reports do the work. What this module adds
is the matching (which Worker class takes a set), the bookkeeping of sets and their reports,
and taylorism's error rule: an error in one task stops the others (STOP_RIGHTNOW).

Nor does it keep a status of its own: a BossReport's status is derived, each time it is
asked for, from what the pool says -- each set's outcome as its call ended (a result, a
StoppedError, an error) and the pool's own report (halted or not) -- by `status_of`. So a
signal sent to the pool by any way (this Boss's `send`, `boss.pool`, a PoolWidget's buttons)
shows in the Boss's status as it shows in the pool's report.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass
from typing import Literal

from .errors import StoppedError, describe
from .pool import WorkerPool
from .reports import TaskError
from .signals import Signal

log = logging.getLogger("nbpar.classic")

_registry: dict = {}  # (module, qualname) -> Worker subclass; a redefinition replaces it
_RESERVED = ("name",)  # an instruction every Worker accepts: the worker's name in reports


class Worker:
    """Base of the classes that do the work: declare `instructions` (the names a task needs)
    and `defaults` (optional names and their default values), implement `task`.

    The Boss builds one Worker per instruction set, in a worker of its pool, and calls
    `task(**instructions)`; what it returns is that set's report. `self.name` is the set's
    "name" instruction, or one made up from the class and the set's position.

    Parameters
    ----------
    name : str, optional
        The set's name, given by the Boss (kept as `self.name`).
    """

    instructions: tuple = ()
    defaults: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        names = cls.instructions
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"{cls.__qualname__}.instructions must be a tuple of names, "
                            f"got {describe(names)}")
        if not isinstance(cls.defaults, dict):
            raise TypeError(f"{cls.__qualname__}.defaults must be a dict, got "
                            f"{describe(cls.defaults)}")
        cls.instructions = tuple(names)
        clash = (set(cls.instructions) & set(cls.defaults)) | (
            set(cls.instructions + tuple(cls.defaults)) & set(_RESERVED))
        if clash:
            raise TypeError(f"{cls.__qualname__}: {sorted(clash)} declared twice, or reserved")
        if cls.instructions or cls.defaults:  # a base that declares nothing is not a candidate
            _registry[(cls.__module__, cls.__qualname__)] = cls

    def __init__(self, name=None):
        self.name = name

    def task(self, **instructions):
        """The work of one instruction set: override it, naming the instructions.

        Parameters
        ----------
        **instructions
            The set's instructions, the declared `defaults` filled in, as keyword
            arguments (``def task(self, seconds, greeting)``).

        Returns
        -------
        object
            That set's report (in `Boss.get_report().workers_report`).
        """
        raise NotImplementedError(f"{type(self).__qualname__} must implement task()")

    @classmethod
    def takes(cls, names) -> bool:
        """Whether this class takes exactly these instruction names (defaults may be left out)."""
        names = set(names)
        return set(cls.instructions) <= names <= set(cls.instructions) | set(cls.defaults)

    @classmethod
    def signature(cls) -> str:
        """The instructions this class takes, for messages: "Sleeper(seconds, [greeting])"."""
        optional = [f"[{n}]" for n in cls.defaults]
        return f"{cls.__qualname__}({', '.join(list(cls.instructions) + optional)})"


def find_worker(instructions: dict) -> type:
    """The Worker class that takes this instruction set; a clear error when none or several do."""
    names = set(instructions) - set(_RESERVED)
    found = [cls for cls in _registry.values() if cls.takes(names)]
    if len(found) > 1:  # the most specific: most required names, then the most derived class
        most = max(len(cls.instructions) for cls in found)
        found = [cls for cls in found if len(cls.instructions) == most]
        found = [cls for cls in found
                 if not any(other is not cls and issubclass(other, cls) for other in found)]
    if len(found) == 1:
        return found[0]
    if not found:
        known = ", ".join(sorted(c.signature() for c in _registry.values())) or "none defined"
        raise ValueError(f"no nbpar.Worker subclass takes the instructions {sorted(names)}; "
                         f"workers known: {known}")
    raise ValueError(f"several nbpar.Worker subclasses take the instructions {sorted(names)}: "
                     f"{', '.join(sorted(c.signature() for c in found))}")


def _work(cls, name, instructions):
    """What runs in a pool worker for one instruction set."""
    return cls(name).task(**instructions)


def combine(common, individual) -> list:
    """The instruction sets: `common` merged into each position of `individual`'s lists."""
    if not isinstance(common, dict) or not isinstance(individual, dict):
        raise TypeError(f"instructions must be dicts, got {describe(common)} and "
                        f"{describe(individual)}")
    lengths = {}
    for key, values in individual.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TypeError(f"individual instruction {key!r} must be a list (one value per "
                            f"task), got {describe(values)}")
        lengths[key] = len(values)
    if len(set(lengths.values())) > 1:
        raise ValueError("individual instructions must be lists of one length, got "
                         + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
    count = next(iter(lengths.values()), 0)
    return [{**common, **{k: list(v)[i] for k, v in individual.items()}} for i in range(count)]


# What a Boss is doing (see status_of)
Status = Literal["idle", "halted", "running", "finished", "stopped", "failed"]


def status_of(sets: int, working: bool, done: int, stopped: int, failed: int,
              pool_halted: bool) -> Status:
    """A Boss's status, from its sets' outcomes as the pool gave them and the pool's report.

    `sets`: instruction sets given; `working`: handed to the pool (make_them_work was
    called); `done`, `stopped`, `failed`: sets whose call ended with a result, stopped
    (StoppedError, or cancelled before it ran) or with an error; `pool_halted`: the pool's
    report says it is halted (`Report.pool_halted`). The first row that holds decides:

    ====================================================  ==========
    no sets                                               "idle"
    sets given, none handed to the pool yet               "halted"
    a set failed (the others were stopped)                "failed"
    a set was stopped (STOP, STOP_RIGHTNOW)               "stopped"
    every set done                                        "finished"
    the pool is halted (HALT, until RESUME or a STOP)     "halted"
    otherwise                                             "running"
    ====================================================  ==========

    So it moves idle -> halted (sets given) -> running (make_them_work) <-> halted (HALT,
    RESUME), and ends finished, stopped or failed; a set given after the end starts it
    again (finished -> running).
    """
    if not sets:
        return "idle"
    if not working:
        return "halted"
    if failed:
        return "failed"
    if stopped:
        return "stopped"
    if done == sets:
        return "finished"
    return "halted" if pool_halted else "running"


@dataclass(frozen=True)
class BossReport:
    """A snapshot of a Boss's work.

    `status`: "idle" (no instructions), "halted" (before make_them_work, or after HALT),
    "running", "finished", "stopped" or "failed". `workers_report`: one dict per finished
    task, in completion order, with its "name", "instructions" and "report" (what `task`
    returned). `pending`: the instruction sets not done (not started, or cut short by a STOP).
    `errors`: `nbpar.TaskError`s (item = the instruction set). `workers`: the pool's workers.
    """

    status: Status
    total: int
    done: int
    failed: int
    elapsed: float
    workers_report: tuple = ()
    pending: tuple = ()
    errors: tuple = ()
    workers: tuple = ()


@dataclass(eq=False)
class _Set:
    index: int
    name: str
    cls: type
    instructions: dict
    future: concurrent.futures.Future | None = None


class Boss:
    """Hands instruction sets to Worker classes, on a WorkerPool of its own.

    Nothing starts before `make_them_work()`; `wait_till_finished()` (or `end()`) must close
    each Boss. `send(signal)` takes every `nbpar.Signal`; `pool` is the pool, e.g. for
    `nbpar.PoolWidget(boss.pool)`.

    Parameters
    ----------
    scheduler : nbpar.Scheduler, optional
        The pool's scheduler (see `nbpar.WorkerPool`).
    name : str, optional
        The Boss's name, in its repr.
    verbose : bool, default False
        Log each set's report as it finishes, and its error if it fails (logger
        "nbpar.classic").
    **pool_options
        Options of `nbpar.WorkerPool` (n_jobs, start_method -- "threading" for tasks that
        call `nbpar.run_job` --, task_timeout, ...); keep_alive is True by default.
    """

    def __init__(self, scheduler=None, name=None, verbose=False, **pool_options):
        pool_options.setdefault("keep_alive", True)
        self.name = name
        self.verbose = verbose
        self.pool = WorkerPool(pool_options.pop("n_jobs", None), scheduler=scheduler,
                               **pool_options)
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)  # notified as each set's call ends
        self._sets: list[_Set] = []
        self._seen = 0  # sets whose call ended and was accounted for
        self._finished: list = []  # (set, report), completion order
        self._errors: list = []
        self._error: BaseException | None = None
        self._n_stopped = 0  # sets whose call the pool stopped (or cancelled before it ran)
        self._working = False  # the sets were handed to the pool (make_them_work)
        self._ending = False
        self._stopped = False  # a STOP was sent through this Boss: it takes no more sets
        self._started_at: float | None = None
        self._ended_at: float | None = None

    # -- giving work
    def set_instructions(self, common=None, individual=None):
        """Add instruction sets: `common` (dict) goes to every set, `individual` (dict of lists
        of one length) gives one set per position. Checked here, before anything runs."""
        sets = combine(common or {}, individual or {})
        classes = [find_worker(s) for s in sets]
        with self._lock:
            if self._ending or self._stopped:
                raise RuntimeError(f"{self!r} takes no more instructions (it was ended or "
                                   f"stopped)")
            start = len(self._sets)
            new = [_Set(start + i, s.pop("name", None) or f"{cls.__name__}-{start + i}", cls,
                        {**cls.defaults, **s}) for i, (s, cls) in enumerate(zip(sets, classes))]
            self._sets.extend(new)
            working = self._working
        if working:
            self._submit(new)

    def make_them_work(self, terminate=False):
        """Start the work given so far (and what comes later); `terminate=True` also ends."""
        with self._lock:
            first = not self._working
            self._working = True
            held = [s for s in self._sets if s.future is None] if first else []
            if self._started_at is None:
                self._started_at = time.monotonic()
        self.pool.resume()
        self._submit(held)
        if terminate or (first and self._ending):
            self.end()

    def _submit(self, sets):
        for s in sets:
            try:
                s.future = self.pool.submit(_work, s.cls, s.name, s.instructions)
            except Exception as exc:  # noqa: BLE001 - e.g. a closed pool: this set fails
                s.future = concurrent.futures.Future()
                s.future.set_exception(exc)
            s.future.add_done_callback(lambda f, s=s: self._done(s, f))

    def _done(self, s, future):
        """A set's call ended (in the pool's Boss thread): keep its report or its error."""
        exc = None if future.cancelled() else future.exception()
        stop = False
        with self._lock:
            if exc is None and not future.cancelled():
                report = future.result()
                self._finished.append((s, report))
                if self.verbose:
                    log.info("%s: %s", s.name, describe(report))
            elif exc is None or isinstance(exc, StoppedError):  # (cancelled, or stopped)
                self._n_stopped += 1
            else:
                cause = exc.__cause__
                self._errors.append(TaskError(s.instructions, s.index, type(exc).__name__,
                                              str(exc), getattr(cause, "tb", "") or "", None))
                stop = self._error is None
                if stop:
                    self._error = exc
            self._seen += 1
            if self._seen == len(self._sets):
                self._ended_at = time.monotonic()
            self._settled.notify_all()
        if stop:  # taylorism: an error in one worker stops the others
            self.pool.stop(now=True)
            if self.verbose:
                log.error("%s failed: %s", s.name, exc)

    # -- signals and the end
    def send(self, signal: Signal):
        """Send a signal to the pool's Boss; SEND_REPORT returns a report, END is `end()`."""
        if not isinstance(signal, Signal):
            raise TypeError(f"expected an nbpar.Signal, got {describe(signal)}")
        if signal is Signal.SEND_REPORT:
            return self.get_report()
        if signal is Signal.END:
            return self.end()
        if signal in (Signal.STOP, Signal.STOP_RIGHTNOW):
            with self._lock:
                self._stopped = True
        self.pool.send(signal)
        return None

    def end(self):
        """No more instructions: once what was given is done, the pool closes."""
        with self._lock:
            self._ending = True
            close = self._working or not self._sets  # else make_them_work closes it
        if close:
            self.pool.close()

    def wait_till_finished(self):
        """End, wait for every task, close the pool; raise the first task error, if any."""
        with self._lock:
            if self._sets and not self._working:
                raise RuntimeError("nothing runs before make_them_work(): call it first")
        self.end()
        with self._settled:
            self._settled.wait_for(lambda: self._seen == len(self._sets))
        self.pool.join()
        if self._error is not None:
            raise self._error

    def stop_them_working(self):
        """Stop now: running tasks are killed, nothing more starts (STOP_RIGHTNOW)."""
        self.send(Signal.STOP_RIGHTNOW)

    def get_report(self, interim=True) -> BossReport | None:
        """A BossReport now (`interim=True`), or only once everything has finished (else None)."""
        pool_report = self.pool.report()  # (asked first: the pool's signals before it count)
        with self._lock:
            sets = list(self._sets)
            finished = list(self._finished)
            errors = tuple(self._errors)
            settled = bool(sets) and self._seen == len(sets)
            status = status_of(len(sets), self._working, len(finished), self._n_stopped,
                               len(errors), pool_report.pool_halted)
            now = (self._ended_at if settled and self._ended_at is not None
                   else time.monotonic())
            elapsed = now - self._started_at if self._started_at is not None else 0.0
        if not interim and not settled:
            return None
        done_ids = {id(s) for s, _ in finished}
        failed_ids = {e.index for e in errors}
        pending = tuple(s.instructions for s in sets
                        if id(s) not in done_ids and s.index not in failed_ids)
        return BossReport(status, len(sets), len(finished), len(errors), elapsed,
                          tuple({"name": s.name, "instructions": s.instructions, "report": r}
                                for s, r in finished),
                          pending, errors, pool_report.workers)

    # -- context manager
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.stop_them_working()
            self.end()
            self.pool.join(5)
        else:
            self.wait_till_finished()

    def __repr__(self):
        label = f" {self.name!r}" if self.name else ""
        return f"<nbpar.Boss{label}: {len(self._sets)} instruction sets>"

"""Immutable snapshots of a map: what the Boss publishes and everything else reads.

A `Ledger` holds a map's results as they arrive: write-once slots plus an append-only log of
which indices finished, in completion order. A `Report` captures the log's length, so it stays
a true snapshot while the map goes on, and it is cheap to take at 10 Hz even for a million
items: `results` and `pending` are computed only when read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

_MISSING = object()


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as the Boss saw it when the report was taken (`Report.workers`).

    Attributes
    ----------
    id : int
        The worker's id, 0 .. n_jobs - 1 (what `pass_worker_id` passes).
    pid : int or None
        Its process id (threads: the caller's), None before it started.
    state : str
        "starting", "idle", "busy", "retiring", "retired" (ended normally) or "dead".
    tasks_done : int
        Tasks it finished.
    busy : float
        Seconds it spent running tasks.
    current_item : object
        The item it is running, if busy.
    current_index : int or None
        That item's index in the input.
    where : str or None
        Where it runs when that is not this machine (the Dask worker's address).
    memory : float or None
        Its own memory (unique set size, bytes) when last measured.
    recycled : int or None
        Times it was replaced for `max_worker_memory` (None: no such limit).
    cpu : float or None
        CPU % of the worker process last sampled (None for threads or remote workers).
    rss, uss : int or None
        Its resident and unique memory in bytes, last sampled (psutil).
    """

    id: int
    pid: int | None
    state: str  # "starting" | "idle" | "busy" | "retiring" | "retired" | "dead"
    tasks_done: int
    busy: float  # seconds spent running tasks
    current_item: Any = None
    current_index: int | None = None
    where: str | None = None  # where it runs when that is not this machine: a Dask worker
    memory: float | None = None  # its own memory (USS, bytes) last measured, if measured
    recycled: int | None = None  # times replaced for max_worker_memory (None: no such limit)
    # sampled from the process when a report is asked for (None: not measured -- a thread
    # or Dask worker, a worker not running, or the first sample of its CPU)
    cpu: float | None = None  # percent of one core since the previous sample
    rss: float | None = None  # resident memory, bytes (counts pages shared with others)
    uss: float | None = None  # memory that is its own alone, bytes

    @property
    def alive(self) -> bool:
        """Whether its worker is starting or running: neither dead nor retired."""
        return self.state not in ("dead", "retired")


@dataclass(frozen=True, slots=True)
class TaskError:
    """A task that failed: what it was, where, and why (`Report.errors`, `Report.retried`,
    and in a map's results with ``on_error="collect"``).

    Attributes
    ----------
    item : object
        The input item (None for an error of the input iterable itself).
    index : int or None
        Its index in the input.
    type : str
        The exception's type name, e.g. "ValueError".
    message : str
        The exception's message.
    traceback : str
        The worker's traceback, formatted by the caller.
    worker_id : int or None
        The worker that ran it.
    attempt : int
        Which run of the item this was (``retries=N`` runs it up to N + 1 times).
    """

    item: Any
    index: int | None
    type: str
    message: str
    traceback: str
    worker_id: int | None
    attempt: int = 1  # which run of the item this was (retries=N runs it up to N + 1 times)


class Ledger:
    """Results of one map, written by the Boss thread only.

    `items_by_index` gives the input item of an index (a list for a fresh map, a dict for a
    continued one); a lazy map (imap) instead keeps only the items read but not finished, and
    does not keep results (they go to its consumer).
    """

    def __init__(self, total: int | None,
                 items_by_index: list[Any] | dict[int, Any] | None = None,
                 prior: dict[int, Any] | None = None, keep_results: bool = True) -> None:
        self.total = total
        self.keep_results = keep_results
        self.items_by_index = items_by_index
        self.slots: list[Any] | dict[int, Any] = (
            [_MISSING] * total if (keep_results and total is not None) else {})
        self.log: list[Sequence[int]] = []  # index collections, completion order
        self.done = 0
        self.prior = len(prior) if prior else 0  # done by an earlier run (a continued map)
        self.unfinished: dict[int, Any] | None = None if items_by_index is not None else {}
        self.rest: Iterator[Any] | None = None  # unread part of a lazy source
        if prior:
            for index, value in prior.items():
                self.slots[index] = value
            self.log.append(tuple(prior))
            self.done = len(prior)

    def note_read(self, indices: Iterable[int], items: Iterable[Any]) -> None:
        if self.unfinished is not None:
            self.unfinished.update(zip(indices, items))

    def record(self, indices: Sequence[int], results: Sequence[Any], counted: bool = True) -> None:
        """Results of `indices`; counted=False for a failed item's placeholder (on_error=
        "collect"), which takes its place in the results but is not counted as done."""
        if self.keep_results:
            slots = self.slots
            if isinstance(indices, range) and isinstance(slots, list) and indices.step == 1:
                slots[indices.start:indices.stop] = results
            else:
                for index, value in zip(indices, results):
                    slots[index] = value
        if self.unfinished is not None:
            for index in indices:
                self.unfinished.pop(index, None)
        self.log.append(indices)
        if counted:
            self.done += len(results)

    def view(self, pending_hint: tuple[int, ...]) -> _LedgerView:
        """A frozen view of what finished so far (see Report)."""
        unfinished = dict(self.unfinished) if self.unfinished is not None else None
        return _LedgerView(self, len(self.log), unfinished, pending_hint)

    def ordered_results(self) -> list[Any]:
        return list(self.slots) if isinstance(self.slots, list) else [
            self.slots[i] for i in sorted(self.slots)]

    def completion_order(self) -> list[Any]:
        return [self.slots[i] for indices in self.log for i in indices]


@dataclass(frozen=True, slots=True)
class _LedgerView:
    ledger: Ledger
    upto: int
    unfinished: dict[int, Any] | None
    pending_hint: tuple[int, ...]  # indices known to be pending for a materialized map, or ()

    def done_indices(self) -> set[int]:
        return {i for indices in self.ledger.log[:self.upto] for i in indices}

    def results(self) -> dict[int, Any]:
        if not self.ledger.keep_results:
            return {}
        slots = self.ledger.slots
        return {i: slots[i] for indices in self.ledger.log[:self.upto] for i in indices}

    def pending(self) -> list[tuple[int, Any]]:
        led = self.ledger
        if self.unfinished is not None:
            return sorted(self.unfinished.items(), key=lambda kv: kv[0])
        done = self.done_indices()
        source = led.items_by_index
        assert source is not None  # a map without them keeps its unfinished items (above)
        keys: Iterable[int]
        if isinstance(source, list):
            assert led.total is not None  # an input given as a list has a length
            keys = range(led.total)
        else:
            keys = sorted(source)
        return [(i, source[i]) for i in keys if i not in done]


@dataclass(frozen=True)
class Report:
    """A snapshot of a map and of the pool's workers, from `pool.report()` at any moment.

    Immutable: it stays as it was when taken while the map goes on, and costs little to take
    (`results` and `pending` are computed when read). Every item is in exactly one of
    `results`, `errors` and `pending`. A stopped or failed map's report continues it:
    ``pool.map(func, report=report)`` runs only what is pending or failed.

    Attributes
    ----------
    status : str
        "idle", "running", "halted", "finished", "stopped" or "failed".
    total : int or None
        The map's items (None: an iterator of unknown length).
    done : int
        Items finished.
    failed : int
        Items failed for good.
    elapsed : float
        Seconds since the map started.
    workers : tuple of WorkerInfo
        Each worker: state, tasks done, busy time, current item.
    errors : tuple of TaskError
        The items that failed for good (with ``on_error="raise"``, the one that stopped
        the map).
    exit_results : tuple
        What `worker_exit` returned in each worker that ran it.
    func_name : str or None
        The mapped function's qualified name, checked when the report continues a map.
    job_id : int or None
        The map's number in its pool.
    retried : tuple of TaskError
        The failed attempts that ran again (``retries=N``).
    pool_halted : bool
        The pool holds new work (HALT): a map started now waits for RESUME.
    prior : int
        Of `done`, the items an earlier run did (a continued map).
    halted : float
        Of `elapsed`, the seconds the map spent halted (`running_time` is the rest).
    running_maps : int
        The maps and calls (`apply_async`, `submit`) the pool was running when the report
        was taken, this map included while it runs.
    results : dict
        index -> result, for what finished. An iterator map's (imap's) results go to its
        consumer and are not kept here.
    pending : list
        The items not yet run, in input order; for an imap, only those already read (the
        unread rest of the input is carried along for a continuation).
    pending_indices : list
        Their indices.
    attempts : dict
        index -> how many times the item ran, for those that ran more than once.
    """

    status: str
    total: int | None
    done: int
    failed: int
    elapsed: float
    workers: tuple[WorkerInfo, ...] = ()
    errors: tuple[TaskError, ...] = ()
    exit_results: tuple[Any, ...] = ()
    func_name: str | None = None
    job_id: int | None = None
    _view: _LedgerView | None = field(default=None, repr=False, compare=False)
    retried: tuple[TaskError, ...] = ()  # the failed attempts that ran again (retries=N)
    pool_halted: bool = False  # the pool holds new work (HALT): a map started now waits
    prior: int = 0  # of `done`, the items an earlier run did (a continued map)
    halted: float = 0.0  # of `elapsed`, the seconds the map spent halted
    running_maps: int = 0  # maps and calls the pool runs (this one included while it runs)

    @property
    def running_time(self) -> float:
        """Seconds the map ran: its elapsed time less the time it was halted."""
        return max(0.0, self.elapsed - self.halted)

    @property
    def rate(self) -> float | None:
        """Items per second of running time, counting this run's items only (None before
        any ran)."""
        done = self.done - self.prior
        return done / self.running_time if done > 0 and self.running_time > 0 else None

    @property
    def attempts(self) -> dict[int | None, int]:
        """index -> how many times the item ran, for the items that ran more than once."""
        out: dict[int | None, int] = {}
        for e in self.retried:
            out[e.index] = max(out.get(e.index, 1), e.attempt + 1)
        return out

    @property
    def results(self) -> dict[int, Any]:
        """index -> result, for the items finished when the report was taken."""
        return self._view.results() if self._view is not None else {}

    @property
    def pending(self) -> list[Any]:
        """The items not yet run, in input order (neither finished nor failed)."""
        return [item for _, item in self._pending_pairs()]

    @property
    def pending_indices(self) -> list[int]:
        """The input indices of `pending`."""
        return [index for index, _ in self._pending_pairs()]

    def _pending_pairs(self) -> list[tuple[int, Any]]:
        if self._view is None:
            return []
        failed = {e.index for e in self.errors}  # every item counts once: done, failed or pending
        return [(i, item) for i, item in self._view.pending() if i not in failed]

    def _unfinished_pairs(self) -> list[tuple[int, Any]]:
        """What a continuation runs: the failed items again, and the pending ones."""
        return self._view.pending() if self._view is not None else []

    @property
    def rest(self) -> Iterator[Any] | None:
        """The unread part of a lazy input (an iterator), or None."""
        return self._view.ledger.rest if self._view is not None else None

    def __str__(self) -> str:
        total = "?" if self.total is None else self.total
        lines = [f"status {self.status}: {self.done}/{total} done, {self.failed} failed, "
                 f"{self.elapsed:.2f} s"]
        if self.pool_halted and self.status != "halted":
            lines[0] += " (the pool is halted: the next map waits for RESUME)"
        for w in self.workers:
            recycled = f", recycled {w.recycled}x for memory" if w.recycled else ""
            lines.append(f"  worker {w.id} pid {w.pid} {w.state}{recycled}: {w.tasks_done} tasks, "
                         f"{w.busy:.2f} s busy")
        for e in self.errors:
            at = "in the input" if e.index is None else f"at index {e.index}"
            lines.append(f"  error {at}: {e.type}: {e.message}")
        return "\n".join(lines)

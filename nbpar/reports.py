"""Immutable snapshots of a map: what the Boss publishes and everything else reads.

A `Ledger` holds a map's results as they arrive: write-once slots plus an append-only log of
which indices finished, in completion order. A `Report` captures the log's length, so it stays
a true snapshot while the map goes on, and it is cheap to take at 10 Hz even for a million
items: `results` and `pending` are computed only when read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

_MISSING = object()


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker as the Boss sees it."""

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


@dataclass(frozen=True, slots=True)
class TaskError:
    """A task that failed: what it was, where, and why."""

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

    def __init__(self, total, items_by_index=None, prior=None, keep_results=True):
        self.total = total
        self.keep_results = keep_results
        self.items_by_index = items_by_index
        self.slots = [_MISSING] * total if (keep_results and total is not None) else {}
        self.log: list = []  # index collections, completion order
        self.done = 0
        self.prior = len(prior) if prior else 0  # done by an earlier run (a continued map)
        self.unfinished: dict | None = None if items_by_index is not None else {}
        self.rest: Iterator | None = None  # unread part of a lazy source
        if prior:
            for index, value in prior.items():
                self.slots[index] = value
            self.log.append(tuple(prior))
            self.done = len(prior)

    def note_read(self, indices, items):
        if self.unfinished is not None:
            self.unfinished.update(zip(indices, items))

    def record(self, indices, results, counted=True):
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

    def view(self, pending_hint):
        """A frozen view of what finished so far (see Report)."""
        unfinished = dict(self.unfinished) if self.unfinished is not None else None
        return _LedgerView(self, len(self.log), unfinished, pending_hint)

    def ordered_results(self):
        return list(self.slots) if isinstance(self.slots, list) else [
            self.slots[i] for i in sorted(self.slots)]

    def completion_order(self):
        return [self.slots[i] for indices in self.log for i in indices]


@dataclass(frozen=True, slots=True)
class _LedgerView:
    ledger: Ledger
    upto: int
    unfinished: dict | None
    pending_hint: tuple  # indices known to be pending for a materialized map, or ()

    def done_indices(self):
        return {i for indices in self.ledger.log[:self.upto] for i in indices}

    def results(self):
        if not self.ledger.keep_results:
            return {}
        slots = self.ledger.slots
        return {i: slots[i] for indices in self.ledger.log[:self.upto] for i in indices}

    def pending(self):
        led = self.ledger
        if self.unfinished is not None:
            return sorted(self.unfinished.items(), key=lambda kv: kv[0])
        done = self.done_indices()
        source = led.items_by_index
        keys = range(led.total) if isinstance(source, list) else sorted(source)
        return [(i, source[i]) for i in keys if i not in done]


@dataclass(frozen=True)
class Report:
    """A snapshot of a map and of the pool's workers.

    `status` is one of "idle", "running", "halted", "finished", "stopped", "failed".
    `results` maps index -> result for what finished; `errors` the items that failed;
    `pending` lists the items not yet run, in input order (`pending_indices` their indices):
    every item is in exactly one of the three. For an iterator map (imap), results
    go to the consumer and are not kept here, and `pending` holds only the items already
    read: the unread rest of the input is carried along for `pool.map(func, report=...)`.
    """

    status: str
    total: int | None
    done: int
    failed: int
    elapsed: float
    workers: tuple = ()
    errors: tuple = ()
    exit_results: tuple = ()
    func_name: str | None = None
    job_id: int | None = None
    _view: Any = field(default=None, repr=False, compare=False)
    retried: tuple = ()  # TaskErrors of the failed attempts that were run again (retries=N)
    prior: int = 0  # of `done`, the items an earlier run did (a continued map)
    halted: float = 0.0  # of `elapsed`, the seconds the map spent halted

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
    def attempts(self) -> dict:
        """index -> how many times the item ran, for the items that ran more than once."""
        out: dict = {}
        for e in self.retried:
            out[e.index] = max(out.get(e.index, 1), e.attempt + 1)
        return out

    @property
    def results(self) -> dict:
        return self._view.results() if self._view is not None else {}

    @property
    def pending(self) -> list:
        return [item for _, item in self._pending_pairs()]

    @property
    def pending_indices(self) -> list:
        return [index for index, _ in self._pending_pairs()]

    def _pending_pairs(self):
        if self._view is None:
            return []
        failed = {e.index for e in self.errors}  # every item counts once: done, failed or pending
        return [(i, item) for i, item in self._view.pending() if i not in failed]

    def _unfinished_pairs(self):
        """What a continuation runs: the failed items again, and the pending ones."""
        return self._view.pending() if self._view is not None else []

    @property
    def rest(self):
        """The unread part of a lazy input (an iterator), or None."""
        return self._view.ledger.rest if self._view is not None else None

    def __str__(self):
        total = "?" if self.total is None else self.total
        lines = [f"status {self.status}: {self.done}/{total} done, {self.failed} failed, "
                 f"{self.elapsed:.2f} s"]
        for w in self.workers:
            recycled = f", recycled {w.recycled}x for memory" if w.recycled else ""
            lines.append(f"  worker {w.id} pid {w.pid} {w.state}{recycled}: {w.tasks_done} tasks, "
                         f"{w.busy:.2f} s busy")
        for e in self.errors:
            at = "in the input" if e.index is None else f"at index {e.index}"
            lines.append(f"  error {at}: {e.type}: {e.message}")
        return "\n".join(lines)

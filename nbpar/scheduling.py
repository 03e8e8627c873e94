"""Scheduling policies: what may start now, and how many items go in one batch.

Schedulers are pure policies the Boss consults before every start decision; they see only
views of the pending work and of what runs, never processes or pipes, so they are tested as
tables. The unit of "running" is a worker busy with a map's work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .reports import Report


@dataclass(frozen=True)
class Running:
    """What runs now: how many workers are busy, in all and per map, and the memory the
    workers hold (bytes: every worker's measured RSS, plus the memory each busy worker's task
    declared on top of it)."""

    total: int = 0
    by_job: dict[int, int] = field(default_factory=dict)  # job id -> its busy workers
    memory: float = 0.0


class JobView(Protocol):
    """What a policy reads of a map (the Boss's `state.Job` offers it)."""

    @property
    def id(self) -> int: ...

    @property
    def total(self) -> int | None: ...

    def next_memory(self) -> float: ...

    def durations(self) -> list[float] | None: ...


class Scheduler:
    """Base policy: decides how many more workers may start work of a map, and may order a
    map's items before it starts.

    Subclass it and override `capacity` (return None for no limit) and/or `order`. `job`
    offers `next_memory()` and `durations()` (what the map declared with `memory=` and
    `duration=`); `history` holds the reports of the pool's latest finished maps. A custom
    policy is a few lines, e.g. at most two tasks of any map at once::

        class TwoAtATime(nbpar.Scheduler):
            def capacity(self, job, running, history=()):
                return 2 - running.by_job.get(job.id, 0)
    """

    wants_rss = False  # ask the Boss to measure workers' RSS after each batch

    def capacity(self, job: JobView, running: Running,
                 history: Sequence[Report] = ()) -> int | None:
        """How many more workers may start work of `job` now; the Boss asks before it
        starts any task.

        Parameters
        ----------
        job : state.Job
            The map (or single call) that has work waiting: its `id`, `total`,
            `next_memory()` and `durations()`.
        running : Running
            What runs now: busy workers in all (`total`) and per map (`by_job`), and the
            memory the workers hold (`memory`, bytes).
        history : tuple of nbpar.Report, default ()
            The reports of the pool's latest finished maps.

        Returns
        -------
        int or None
            A number of workers (0: wait until something finishes), or None for no limit.
        """
        return None

    def order(self, job: JobView) -> list[int] | None:
        """The order in which a map's items start, asked once before its first task.

        Parameters
        ----------
        job : state.Job
            The map; `job.durations()` gives what it declared with `duration=`.

        Returns
        -------
        list or None
            A permutation of the positions of its pending items, or None to keep the
            input order.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MaxThreadsScheduler(Scheduler):
    """At most `n` tasks run at once across every map of the pool.

    Parameters
    ----------
    n : int
        The cap; fewer than the pool's workers leaves the others idle.
    """

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"MaxThreadsScheduler needs a whole number >= 1, got {n!r}")
        self.n = n

    def capacity(self, job: JobView, running: Running,
                 history: Sequence[Report] = ()) -> int | None:
        return max(0, self.n - running.total)

    def __repr__(self) -> str:
        return f"MaxThreadsScheduler({self.n})"


class MaxMemoryScheduler(Scheduler):
    """Start a task only if the memory it declares (`map(..., memory=lambda item: bytes)`)
    fits under `limit_bytes` beside what the workers hold: their measured memory (unique set
    size, taken when a worker starts and after each of its batches) plus what their running
    tasks declared. One task always may run, even if it alone declares more than the limit.

    Parameters
    ----------
    limit_bytes : float
        The memory, in bytes, that the workers and their running tasks may hold together.
    """

    wants_rss = True

    def __init__(self, limit_bytes: float):
        if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, (int, float)) or (
                limit_bytes <= 0):
            raise ValueError(f"MaxMemoryScheduler needs a number of bytes > 0, got "
                             f"{limit_bytes!r}")
        self.limit = limit_bytes

    def capacity(self, job: JobView, running: Running,
                 history: Sequence[Report] = ()) -> int | None:
        if running.total == 0:
            return None
        return None if running.memory + job.next_memory() <= self.limit else 0

    def __repr__(self) -> str:
        return f"MaxMemoryScheduler({self.limit!r})"


class LongerFirstScheduler(Scheduler):
    """Start the tasks that declare the longest duration (`map(..., duration=lambda item:
    seconds)`) first, so a long task does not start last and stretch the makespan."""

    def order(self, job: JobView) -> list[int] | None:
        durations = job.durations()
        if durations is None:
            return None
        return sorted(range(len(durations)), key=lambda p: -durations[p])


class JobsLimit:
    """A cap on running tasks, given to maps as ``limit=``; maps naming the same limit
    share one cap, also when they run at once from several threads (Ruffus's
    ``@jobs_limit(n, "name")``): e.g. three downloads from one server at most.

    Parameters
    ----------
    n : int
        Tasks of the maps under this limit that may run at once.
    name : str, optional
        Limits made with the same name are one cap. Default None: this object alone.
    """

    def __init__(self, n: int, name: str | None = None):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"JobsLimit needs a whole number >= 1, got {n!r}")
        self.n = n
        self.name = name
        self.key = ("name", name) if name is not None else ("id", id(self))

    def __repr__(self) -> str:
        return f"JobsLimit({self.n}, {self.name!r})"


class AdaptiveChunker:
    """Batch sizes grown from measured task times so a batch takes ~`target` seconds.

    Starts at one item (nothing is known yet), grows at most `growth` times per batch, and
    never gives one worker more than its share of what remains, so the tail stays balanced;
    but the tail is not cut into batches shorter than `floor` seconds, which would cost more
    to send than they balance. A fixed `chunk_size` bypasses all of it.
    """

    target = 0.02
    growth = 8
    prefetch_below = 0.05  # a second batch is queued on a worker only for short batches
    seed_cap = 4096
    # seconds: the tail is not cut into batches shorter than this, about twice what a batch
    # costs the Boss and its worker (a map of tiny items is not cut into thousands of them)
    floor = 0.0002

    def __init__(self, fixed: int | None = None, min_batch_time: float | None = None):
        self.fixed = fixed
        self.per_item: float | None = None
        self.last = 0
        if min_batch_time is not None and min_batch_time > self.target:
            # A backend whose batch costs milliseconds to send (Dask) asks for longer
            # batches, keeps a second one queued behind each so that cost is hidden, and
            # does not cut the tail into batches shorter than that cost.
            self.target = min_batch_time
            self.prefetch_below = max(self.prefetch_below, 2 * min_batch_time)
            self.floor = min_batch_time / 4

    def seed(self, per_item: float) -> None:
        """Start from what an earlier map of the same function measured (a warm pool), but
        grow from a modest batch in case this map's items are slower."""
        self.per_item = per_item
        self.last = max(1, min(int(self.target / max(per_item, 1e-9)), self.seed_cap))

    def observe(self, n_items: int, elapsed: float) -> None:
        if n_items <= 0:
            return
        sample = max(elapsed, 1e-9) / n_items
        if self.per_item is None:
            self.per_item = sample
        else:  # weighted towards the newer, larger batches
            self.per_item = 0.5 * self.per_item + 0.5 * sample

    def next_size(self, remaining: int | None, n_workers: int) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.per_item is None:
            size = 1
        else:
            size = max(1, min(int(self.target / self.per_item), max(self.last, 1) * self.growth))
        if remaining is not None:
            share = -(-remaining // (2 * max(n_workers, 1)))
            if self.floor and self.per_item is not None:
                share = max(share, int(self.floor / self.per_item))
            size = max(1, min(size, share))
        self.last = size
        return size

    def may_prefetch(self, size: int) -> bool:
        return self.per_item is not None and size * self.per_item < self.prefetch_below

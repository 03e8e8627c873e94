"""The Boss's state as a pure state machine: events in, instructions out.

Nothing here touches a pipe, a process, a thread or a clock: the Boss (boss.py) turns what it
hears into events, passes the time along, and carries out the instructions it gets back (both
kinds of record are in events.py). So the
whole table -- dispatch, batching, HALT/STOP, crashes, timeouts, retirement -- is unit-tested
without starting anything.

Worker slots are the pool's worker ids 0..n-1; a slot whose process dies is refilled under the
same id. A map is a `Job`; a batch of its items handed to one worker is a `TaskBatch`. A job
ends when nothing of it is in flight and either its input is exhausted or it was stopped or
failed; it then yields one `FinishJob`.
"""

from __future__ import annotations

import heapq
import itertools
import signal as _signal
from collections import OrderedDict, deque
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .errors import (ErrorPayload, StoppedError, TaskTimeoutError, WorkerDiedError, add_note,
                     describe, rebuild, where)
# the vocabulary (events in, instructions out), re-exported: callers say st.Dispatch
from .events import (EVENTS, ApplyShared, BatchDone, BatchFailed, BatchStarted,
                     CancelJob, ClusterBack, ClusterEmpty, DeadlinePassed, Deliver, Dispatch,
                     DispatchFailed, DispatchHeld, DropBatches, Event, FinishJob, ForgetFunc,
                     Instruction, JobSubmitted, KillWorker, Reply,
                     ReportRequested, Reshare, ResultsConsumed, RetireWorker, SendHeld,
                     Shutdown, SignalReceived, StartFailed, StartWorker, Tick, WorkerDied,
                     WorkerExited, WorkerInitFailed, WorkerMeasured, WorkerReady)
from .messages import progress_span
from .no_workers import NoWorkersPolicy, Spell
from .reports import Ledger, Report, TaskError, WorkerInfo
from .scheduling import AdaptiveChunker, JobsLimit, Running, Scheduler
from .signals import Signal
from .story import STORY_LENGTH, Step

from .sources import IterSource, ListSource

if TYPE_CHECKING:  # the types only: the machine never calls into the caller's side
    from .failures import FailurePolicy
    from .jobs import JobHandle

# what a map is doing; "pending" and "running" are active (see Job.active)
JobStatus = Literal["pending", "running", "finished", "failed", "stopped"]
Stopping = Literal["stop", "failed"]  # why a map runs no more of its items
# what a worker slot's process is doing ("retiring": asked to run worker_exit and end)
SlotState = Literal["starting", "idle", "busy", "retiring", "dead"]
KillReason = Literal["retire", "stop", "timeout", "cancel", "init_failed"]


# ----------------------------------------------------------------------------- the work

@dataclass(eq=False)
class Job:
    """One map (or one submitted call) as the Boss tracks it."""

    id: int
    func: Callable[..., Any] | None  # None once the map has ended
    source: ListSource | IterSource  # take(n) -> (indices, items)
    ledger: Ledger
    total: int | None = None
    star: bool = False
    streaming: bool = False  # deliver results as they come (imap, submit) rather than at the end
    single: bool = False  # one call (submit / apply_async): no report of its own
    chunker: AdaptiveChunker = field(default_factory=AdaptiveChunker)
    max_ahead: int | None = None  # bound on items read but not yet consumed (imap)
    limit: JobsLimit | None = None
    func_name: str = ""
    # item -> bytes it needs (declared by the map, for MaxMemoryScheduler)
    memory: Callable[[Any], float] | None = None
    # item -> seconds it takes (declared, for LongerFirstScheduler)
    duration: Callable[[Any], float] | None = None
    func_key: int = -1  # the same function object keeps its key across maps
    # per-call settings (None: the pool's): seconds a task may run, tasks a worker runs
    # before it is replaced, items of this map in flight at once
    task_timeout: float | None = None
    lifespan: int | None = None
    max_active: int | None = None
    handle: JobHandle | None = None  # the caller's side of this map (opaque here)
    # live state
    status: JobStatus = "pending"
    requeued: deque[tuple[Any, list[Any]]] = field(default_factory=deque)  # (indices,
    # items) to run again first
    in_flight: dict[int, TaskBatch] = field(default_factory=dict)
    exhausted: bool = False
    stopping: Stopping | None = None
    error: BaseException | None = None
    input_error: BaseException | None = None  # the input iterable raised (after `read` items)
    errors: list[TaskError] = field(default_factory=list)
    failure: FailurePolicy | None = None  # retries, on_error (None: fail the map)
    attempts: dict[int, int] = field(default_factory=dict)  # index -> failed attempts
    retried: list[TaskError] = field(default_factory=list)  # the attempts run again
    failed: int = 0
    read: int = 0
    consumed: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    halted_for: float = 0.0  # seconds the map spent halted (its rate counts running time only)
    halted_at: float | None = None  # when its current halt began

    @property
    def active(self) -> bool:
        return self.status in ("pending", "running")

    def halt_clock(self, now: float, halted: bool) -> None:
        """Start (halted=True) or end a halt of this map on its clock."""
        if halted and self.halted_at is None:
            self.halted_at = now
        elif not halted and self.halted_at is not None:
            self.halted_for += now - self.halted_at
            self.halted_at = None

    def in_flight_items(self) -> int:
        return sum(len(b.items) for b in self.in_flight.values())

    @property
    def caller(self) -> JobHandle:
        """The caller's side of this map; every job reaches the Boss with one."""
        assert self.handle is not None, f"map {self.id} has no handle"
        return self.handle

    def next_memory(self) -> float:
        """Declared memory of the next item to start (0 when nothing is declared)."""
        if self.memory is None:
            return 0
        needed: float = 0
        if self.requeued:
            needed = self.memory(self.requeued[0][1][0])
        elif isinstance(self.source, ListSource) and not self.exhausted and (
                self.source.pos < self.source.length):
            needed = self.memory(self.source.peek())
        return needed

    def durations(self) -> list[float] | None:
        """Declared durations of the items not yet started, in order (a list input only)."""
        if self.duration is None or not isinstance(self.source, ListSource) or self.read:
            return None
        return [self.duration(item) for item in self.source.items]


@dataclass(eq=False, slots=True)
class TaskBatch:
    batch_id: int
    job: Job
    indices: Any  # range or tuple of input indices
    items: list[Any]
    worker_id: int
    started_at: float | None = None  # task_timeout's clock: when its first task started
    memory: float = 0.0  # declared by its map
    dispatched_at: float | None = None
    settled: bool = False  # its failure was dealt with (a timeout): never run again as is


@dataclass(eq=False)
class WorkerSlot:
    id: int
    state: SlotState = "dead"
    pid: int | None = None
    queue: deque[TaskBatch] = field(default_factory=deque)
    tasks_done: int = 0
    busy: float = 0.0
    since_start: int = 0  # tasks done by the current process (max_tasks_per_worker)
    funcs: OrderedDict[int, bool] = field(default_factory=OrderedDict)  # function keys it
    # holds (LRU)
    rss: float = 0.0  # last measured resident memory of its process
    lifespan: int | None = None  # tasks its process may run (of the map it last took work of)
    kill_reason: KillReason | None = None
    over_memory: bool = False  # past max_worker_memory: retired once its queue is done
    recycled: int = 0  # processes of this slot retired for max_worker_memory
    retired: bool = False  # its last process ended normally (retired), not killed or crashed

    @property
    def alive(self) -> bool:
        return self.state != "dead"

    def queued_items(self) -> int:
        return sum(len(b.items) for b in self.queue)


# ----------------------------------------------------------------------------- the machine

def describe_exit(exitcode: int | None) -> str:
    """'exit code 3' or 'signal SIGSEGV(-11)', the way a user can look it up."""
    if exitcode is None:
        return "unknown exit status"
    if exitcode < 0:
        try:
            name = _signal.Signals(-exitcode).name
        except ValueError:
            name = "signal"
        return f"killed by signal {name}({exitcode})"
    return f"exit code {exitcode}"


SETUP_TIMEOUT = 60.0  # seconds a dispatched batch may take to start (unpickling, imports)
# A batch queued behind another (a prefetch) whose encoded body is larger than this is not
# sent ahead: it waits, kept by the Boss, until its worker is free. A worker busy with one
# batch would hold a second large one in its pipe and memory for nothing; small ones go at
# once, so that the worker never waits for the round trip.
PREFETCH_MAX_BYTES = 64 * 1024


class JobTable:
    """The active jobs in submission order, found by id at once: thousands of single calls in
    flight must not cost a walk over all of them per event."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[int, Job] = {}

    def append(self, job: Job) -> None:
        self._by_id[job.id] = job

    def remove(self, job: Job) -> None:
        del self._by_id[job.id]

    def get(self, job_id: int) -> Job | None:
        return self._by_id.get(job_id)

    def has(self, job: Job) -> bool:
        return self._by_id.get(job.id) is job

    def clear(self) -> None:
        self._by_id.clear()

    def __iter__(self) -> Iterator[Job]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)


class Deadlines:
    """The deadlines of the batches at the head of the workers' queues, nearest first: a
    heap of (deadline, worker id, batch), each entry pushed when its batch becomes the head
    of a queue or starts its clock. An entry goes stale when its batch leaves the head, its
    clock changes or its worker is being killed; stale entries are dropped when they come
    to the top, and all at once when they outnumber the live ones, so a finished task costs
    a push, not a walk over every worker. (The state is passed in, not held: no cycle keeps
    a closed pool's maps alive until a garbage collection.)"""

    __slots__ = ("_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, TaskBatch]] = []  # (deadline, worker, order,
        # batch)
        self._order = itertools.count()  # ties never compare batches

    def push(self, state: BossState, slot: WorkerSlot) -> None:
        """The batch now at the head of `slot`'s queue has a deadline (or a new one)."""
        deadline = state._deadline(slot.queue[0])
        if deadline is None:
            return
        heap = self._heap
        heapq.heappush(heap, (deadline, slot.id, next(self._order), slot.queue[0]))
        if len(heap) > 2 * len(state.slots) + 64:
            heap[:] = [e for e in heap if self._live(state, e)]
            heapq.heapify(heap)

    @staticmethod
    def _live(state: BossState, entry: tuple[float, int, int, TaskBatch]) -> bool:
        deadline, wid, _, batch = entry
        slot = state.slots[wid]
        return (slot.kill_reason is None and bool(slot.queue) and slot.queue[0] is batch
                and state._deadline(batch) == deadline)

    def nearest(self, state: BossState) -> float | None:
        heap = self._heap
        while heap and not self._live(state, heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def overdue(self, state: BossState, now: float) -> list[int]:
        """The workers whose head batch is past its deadline, by worker id (their entries
        are taken: each is killed for it)."""
        heap, found = self._heap, set()
        if not heap or heap[0][0] > now:
            return []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._live(state, entry):
                found.add(entry[1])
        return sorted(found)


FUNCS_PER_WORKER = 64  # functions a worker keeps unpickled (the oldest are forgotten)
HISTORY = 100  # finished maps' reports kept for schedulers
LEARNED = 256  # functions whose measured time per item is remembered


class BossState:
    """Everything the Boss knows; `handle(event, now)` returns what to do next."""

    def __init__(self, n_workers: int, *, scheduler: Scheduler | None = None,
                 keep_alive: bool = False, task_timeout: float | None = None,
                 max_tasks_per_worker: int | None = None,
                 positions: Callable[[int], int | None] | None = None,
                 clock_at_start: bool = False, setup_timeout: float | None = None,
                 max_worker_memory: float | None = None) -> None:
        self.slots = [WorkerSlot(i) for i in range(n_workers)]
        self.scheduler = scheduler or Scheduler()
        # a scheduler that keeps Scheduler.capacity admits everything: no need to count
        self._capped = type(self.scheduler).capacity is not Scheduler.capacity
        self.keep_alive = keep_alive
        self.task_timeout = task_timeout
        # With workers that say when a batch starts (BatchStarted), task_timeout counts the
        # task's own run time; what comes before it (unpickling the function, importing its
        # modules, unpickling the items) has a deadline of its own, named as such.
        self.clock_at_start = clock_at_start and task_timeout is not None
        self.setup_timeout = (setup_timeout if setup_timeout is not None else
                              max(SETUP_TIMEOUT, task_timeout or 0.0))
        self.max_tasks = max_tasks_per_worker
        self.max_memory = max_worker_memory  # bytes of a worker's own memory (USS), or None
        self.positions = positions  # worker id -> position in its batch (read-only view)
        self.jobs = JobTable()  # active, in submission order
        # Work is found and jobs are finished without walking every job: `_feeding` holds
        # the jobs that may have items to hand out (pruned as they are passed over),
        # `_touched` those whose end may have come with this event (`_check_all`: every job,
        # after a signal or a death).
        self._feeding: dict[int, Job] = {}
        self._touched: list[Job] = []
        self._check_all = False
        # Nor does it walk every worker: `_open` holds the slots that may have room for a
        # batch (pruned by _dispatch when full, not ready or being killed; a slot returns
        # when a batch leaves its queue or its worker is ready), so a finished task costs a
        # look at its own worker, not at all of them.
        self._open: set[int] = set()
        self.deadlines = Deadlines()
        # _manage_workers has nothing to do while every worker is up and none has a lifespan:
        # both known without a walk over the workers at every event (see _settled)
        self._all_up = False  # True: every slot idle or busy (reset when one may not be)
        self._lifespan_given = False  # a map gave a worker a lifespan of its own
        self.history: deque[Report] = deque(maxlen=HISTORY)  # the latest finished maps
        self.learned: dict[int, float] = {}  # function key -> seconds per item, for the next
        # map's batches
        self.last_job: Job | None = None
        self.halted = False
        self.halt_scope: int | None = None  # the map a HALT was made for (None: the pool's)
        self.ending = False
        self.listening = True
        self.shut_down = False
        self.held: list[Job] = []  # finished jobs waiting for their workers to retire
        self.exit_results: list[Any] = []
        self.exit_error: BaseException | None = None
        self._batch_ids = itertools.count()
        self._pending_kills: list[int] = []  # slots to kill, found while failing a map
        self.init_broken = False  # worker_init failed: start no worker until new work comes
        self.resharing: list[Any] = []  # new shared objects waiting for the old workers to
        # go
        self.prefetch_max_bytes = PREFETCH_MAX_BYTES  # (see PREFETCH_MAX_BYTES)
        # worker id -> the batch the Boss holds back for it (DispatchHeld): queued behind the
        # one it runs, sent (SendHeld) when that one leaves its queue; at most one a worker
        self.withheld: dict[int, int] = {}
        self.no_workers = NoWorkersPolicy()  # slots whose cluster has no workers, and since
        self._stimuli = 0  # the last event's stimulus_id
        self.story: deque[Step] = deque(maxlen=STORY_LENGTH)  # the last steps (story.py)

    # -- entry point
    def handle(self, event: Event, now: float) -> list[Instruction]:
        """Take one event at time `now` (the Boss's clock): the instructions to carry out,
        in order. The event is numbered (`stimulus_id`) and the step kept in `story`."""
        out: list[Instruction] = []
        self._stimuli += 1
        event.stimulus_id = sid = self._stimuli
        _HANDLERS[type(event)](self, event, now, out)
        self._advance(now, out)
        if event.told:
            told: tuple[Any, ...] = ()
            for instr in out:  # (no comprehension: this runs for every task)
                told += (instr.__class__._brief(instr),)
            self.story.append((sid, now, event.__class__._brief(event), told))
        return out

    def handle_many(self, events: Sequence[Event], now: float) -> list[Instruction]:
        """Take several events that arrived together (a burst of submitted calls, the
        results a worker sent in one write) as `handle` takes each, but advance once, after
        the last: what each event says is noted first, then work is handed out and maps are
        finished once for all of them. Each event is numbered and kept in `story` with the
        instructions it gave; those of the one advance go with the last."""
        out: list[Instruction] = []
        story = self.story
        last = len(events) - 1
        for k, event in enumerate(events):
            self._stimuli += 1
            event.stimulus_id = sid = self._stimuli
            start = len(out)
            _HANDLERS[type(event)](self, event, now, out)
            if k == last:
                self._advance(now, out)
            if event.told:
                told: tuple[Any, ...] = ()
                for instr in out[start:]:
                    told += (instr.__class__._brief(instr),)
                story.append((sid, now, event.__class__._brief(event), told))
        return out

    def validate_state(self) -> None:
        """Check the machine's invariants (state_checks.py): every running task is queued on
        a live worker, no item is both pending and running, a map's counts add up, and the
        shortcuts (open slots, feeding maps, deadlines) agree with what they stand for.

        Walks everything: for tests, which run it after every step, and for debugging.

        Raises
        ------
        nbpar.state_checks.InvalidState
            An invariant is broken; the message says which, and for which worker or map.
        """
        from .state_checks import check
        check(self)

    def timeout_of(self, job: Job) -> float | None:
        """The task timeout a job's tasks run under: its own, else the pool's."""
        return job.task_timeout if job.task_timeout is not None else self.task_timeout

    def next_deadline(self) -> float | None:
        return self.deadlines.nearest(self)

    def overdue(self, now: float) -> list[int]:
        return self.deadlines.overdue(self, now)

    def _deadline(self, batch: TaskBatch) -> float | None:
        timeout = self.timeout_of(batch.job)
        if timeout is None:
            return None
        if batch.started_at is not None:
            return batch.started_at + timeout
        if self.clock_at_start and batch.dispatched_at is not None:
            return batch.dispatched_at + max(self.setup_timeout, timeout)
        return None

    # -- events
    def _on_JobSubmitted(self, ev: JobSubmitted, now: float, out: list[Instruction]) -> None:
        job = ev.job
        if self.ending:
            job.status = "failed"
            out.append(FinishJob(job, RuntimeError("the pool is closed: it takes no new work"),
                                 self.report(job, now)))
            return
        job.status = "running"
        job.started_at = now
        job.halt_clock(now, self.halted)
        self.init_broken = False
        order = self.scheduler.order(job)
        if order is not None and isinstance(job.source, ListSource):  # (a lazy input has none)
            job.source = job.source.reordered(order)
        if job.chunker.per_item is None and job.func_key in self.learned:
            job.chunker.seed(self.learned[job.func_key])  # (one call: whether to queue it)
        self.jobs.append(job)
        self._feeding[job.id] = job
        self._touched.append(job)
        if not job.single:
            self.last_job = job

    def _on_WorkerReady(self, ev: WorkerReady, now: float, out: list[Instruction]) -> None:
        slot = self.slots[ev.worker_id]
        if slot.state == "starting":
            slot.state = "idle"
            slot.pid = ev.pid
            self._open.add(slot.id)

    def _on_BatchStarted(self, ev: BatchStarted, now: float, out: list[Instruction]) -> None:
        slot = self.slots[ev.worker_id]
        for batch in slot.queue:
            if batch.batch_id == ev.batch_id:
                batch.started_at = now
                if batch is slot.queue[0]:
                    self.deadlines.push(self, slot)
                return

    def _on_BatchDone(self, ev: BatchDone, now: float, out: list[Instruction]) -> None:
        slot, batch = self._pop_batch(ev.worker_id, ev.batch_id, now, out)
        if batch is None:
            return
        results, job = ev.results, batch.job
        n = len(results)  # (_account and _record inline: this runs for every task)
        slot.tasks_done += n
        slot.since_start += n
        slot.busy += ev.elapsed
        job.chunker.observe(len(batch.items), ev.elapsed)
        job.ledger.record(batch.indices, results)
        if job.streaming and job.active:
            out.append(Deliver(job, batch.indices, results))

    def _on_BatchFailed(self, ev: BatchFailed, now: float, out: list[Instruction]) -> None:
        slot, batch = self._pop_batch(ev.worker_id, ev.batch_id, now, out)
        if batch is None:
            return
        n = len(ev.results)
        self._account(slot, batch, n + 1, ev.elapsed)
        job = batch.job
        if n:
            self._record(job, batch.indices[:n], ev.results, out)
        index, item = batch.indices[n], batch.items[n]
        place = where(item, index, ev.worker_id)
        exc = (rebuild(ev.error, where=place) if isinstance(ev.error, ErrorPayload)
               else _noted(ev.error, place))
        rest = [(batch.indices[n + 1:], batch.items[n + 1:])]  # never run: the batch stopped
        self._task_error(job, item, index, ev.worker_id, exc, out, rest)

    def _on_DispatchFailed(self, ev: DispatchFailed, now: float, out: list[Instruction]) -> None:
        slot, batch = self._pop_batch(ev.worker_id, ev.batch_id, now, out)
        if batch is None:
            return
        item = getattr(ev.error, "item", batch.items[0])
        index = getattr(ev.error, "index", batch.indices[0])
        rest = [(tuple(i for i in batch.indices if i != index),
                 [x for i, x in zip(batch.indices, batch.items) if i != index])]
        self._task_error(batch.job, item, index, ev.worker_id, ev.error, out, rest)

    def _on_DispatchHeld(self, ev: DispatchHeld, now: float, out: list[Instruction]) -> None:
        slot = self.slots[ev.worker_id]
        if not any(b.batch_id == ev.batch_id for b in slot.queue):
            return  # it left its queue meanwhile (its worker died): nothing to send
        if slot.queue[0].batch_id == ev.batch_id:  # the batch before it is gone already
            out.append(SendHeld(slot.id, ev.batch_id))
        else:
            self.withheld[slot.id] = ev.batch_id

    def _on_WorkerDied(self, ev: WorkerDied, now: float, out: list[Instruction]) -> None:
        slot = self.slots[ev.worker_id]
        self.withheld.pop(slot.id, None)  # (its batches go back to their maps below)
        self.no_workers.back(slot.id)  # a new slot looks afresh
        reason, was = slot.kill_reason, slot.state
        self._all_up = False
        batches = list(slot.queue)
        slot.queue.clear()
        slot.state, slot.kill_reason = "dead", None  # pid kept: the report says who ran
        slot.retired = (was == "retiring" or reason == "retire") and ev.exitcode in (0, None)
        slot.over_memory = False
        slot.funcs.clear()
        slot.since_start = 0
        if batches and reason is None and was != "retiring":
            culprit = batches.pop(0)
            n = len(culprit.items)
            pos = ev.position if ev.position is not None and 0 <= ev.position < n else 0
            span = min(progress_span(n), n - pos)
            item, index = culprit.items[pos], culprit.indices[pos]
            what = (f"item {describe(item)} (index {index})" if span == 1 else
                    f"one of the {span} items from index {index} (the first: {describe(item)};"
                    f" chunk_size=1 names the very item)")
            if self.clock_at_start and culprit.started_at is None:
                what = f"the set-up (unpickling the function or the items) of {what}"
            exc = WorkerDiedError(
                f"worker {ev.worker_id} died ({ev.cause or describe_exit(ev.exitcode)}) while "
                f"running {what}; the pool replaces it",
                worker_id=ev.worker_id, exitcode=ev.exitcode, item=item, index=index)
            culprit.job.in_flight.pop(culprit.batch_id, None)
            rest = [(tuple(i for k, i in enumerate(culprit.indices) if k != pos),  # their
                     [x for k, x in enumerate(culprit.items) if k != pos])]  # results died too
            self._task_error(culprit.job, item, index, ev.worker_id, exc, out, rest)
        elif was == "retiring" and ev.exitcode not in (0, None) and self.exit_error is None:
            self.exit_error = WorkerDiedError(  # a crash in worker_exit is no normal retirement
                f"worker {ev.worker_id} died in worker_exit ({describe_exit(ev.exitcode)})",
                worker_id=ev.worker_id, exitcode=ev.exitcode)
        elif was == "starting" and reason is None:
            self.init_broken = True
            exc = WorkerDiedError(
                f"worker {ev.worker_id} died while starting "
                f"({ev.cause or describe_exit(ev.exitcode)}), before or during worker_init",
                worker_id=ev.worker_id, exitcode=ev.exitcode)
            for job in list(self.jobs):
                self._fail(job, exc)
        for batch in reversed(batches):  # never started, or interrupted: back to their map
            job = batch.job
            job.in_flight.pop(batch.batch_id, None)
            if job.active and not job.stopping and not batch.settled:
                job.requeued.appendleft((batch.indices, batch.items))
                self._feed_again(job)
        self._check_all = True

    def _on_WorkerInitFailed(self, ev: WorkerInitFailed, now: float,
                             out: list[Instruction]) -> None:
        exc = rebuild(ev.error, where=f"raised in worker_init on worker {ev.worker_id}")
        for job in list(self.jobs):
            self._fail(job, exc)
        self.slots[ev.worker_id].kill_reason = "init_failed"
        self.init_broken = True

    def _on_StartFailed(self, ev: StartFailed, now: float, out: list[Instruction]) -> None:
        self.slots[ev.worker_id].state = "dead"
        self._all_up = False
        self.init_broken = True
        for job in list(self.jobs):
            self._fail(job, ev.error)

    def _on_CancelJob(self, ev: CancelJob, now: float, out: list[Instruction]) -> None:
        job = self.jobs.get(ev.job_id)
        if job is not None and not job.stopping:
            job.stopping = "stop"
            self._touched.append(job)

    def _on_Reshare(self, ev: Reshare, now: float, out: list[Instruction]) -> None:
        self.resharing.append(ev.prepared)

    def _on_WorkerExited(self, ev: WorkerExited, now: float, out: list[Instruction]) -> None:
        if ev.hooked:  # a worker without worker_exit has no exit result (not even None)
            self.exit_results.append(ev.result)
        if ev.error is not None and self.exit_error is None:
            self.exit_error = rebuild(ev.error,
                                      where=f"raised in worker_exit on worker {ev.worker_id}")

    def _on_SignalReceived(self, ev: SignalReceived, now: float, out: list[Instruction]) -> None:
        sig = ev.signal
        if ev.for_job is not None and self.jobs.get(ev.for_job) is None:
            return  # a late click: its map ended, and the next map is not its own
        self._check_all = True
        if sig in (Signal.HALT, Signal.RESUME, Signal.STOP, Signal.STOP_RIGHTNOW):
            for job in self.jobs:  # a stopped map runs no more: its halt ends too
                job.halt_clock(now, sig is Signal.HALT)
        if sig is Signal.HALT:
            if not self.halted or self.halt_scope is not None:
                self.halt_scope = ev.for_job
            self.halted = True
        elif sig is Signal.RESUME:
            self.halted = False
            self.halt_scope = None
        elif sig is Signal.SEND_REPORT:
            out.append(Reply(ev.reply, self.report(None, now)))
        elif sig in (Signal.STOP, Signal.STOP_RIGHTNOW):
            self.halted = False  # nothing of these maps starts again; the next map may run
            self.halt_scope = None
            for job in self.jobs:
                job.stopping = job.stopping or "stop"
            if sig is Signal.STOP_RIGHTNOW:
                for slot in self.slots:
                    if slot.queue:
                        self._kill(slot, "stop", out)
        elif sig is Signal.END:
            self.ending = True
        elif sig is Signal.STOP_LISTENING:
            self.ending = True
            self.listening = False

    def _on_ReportRequested(self, ev: ReportRequested, now: float, out: list[Instruction]) -> None:
        self._check_all = True  # (as for a signal)
        out.append(Reply(ev.reply, self.report(None, now)))

    def _on_DeadlinePassed(self, ev: DeadlinePassed, now: float, out: list[Instruction]) -> None:
        slot = self.slots[ev.worker_id]
        if not slot.queue or slot.kill_reason is not None:
            return
        batch = slot.queue[0]
        item, index = batch.items[0], batch.indices[0]
        if batch.started_at is None:
            exc = TaskTimeoutError(
                f"item {describe(item)} (index {index}) did not start within "
                f"{self.setup_timeout} s on worker {slot.id}: the worker hung in set-up, "
                f"unpickling the function or the items (importing their modules), before "
                f"the task; the worker is replaced")
        else:
            exc = TaskTimeoutError(
                f"item {describe(item)} (index {index}) ran longer than task_timeout="
                f"{self.timeout_of(batch.job)} s on worker {slot.id}; the worker is replaced")
        self._kill(slot, "timeout")
        batch.settled = True  # its fate is decided here: not requeued when the worker dies
        rest = [(batch.indices[1:], batch.items[1:])]
        self._task_error(batch.job, item, index, slot.id, exc, out, rest)

    def _on_WorkerMeasured(self, ev: WorkerMeasured, now: float, out: list[Instruction]) -> None:
        slot = self.slots[ev.worker_id]
        slot.rss = ev.rss
        if self.max_memory is not None and ev.rss > self.max_memory and slot.state in (
                "idle", "busy") and (slot.queue or slot.since_start):  # after a task only
            slot.over_memory = True  # like loky's leak guard: a fresh process replaces it

    def _on_ClusterEmpty(self, ev: ClusterEmpty, now: float, out: list[Instruction]) -> None:
        """A slot's look found its cluster without workers: once the spell has lasted the
        wait allowed (no_workers.py), its batches fail as a failed task does -- the map's
        failure policy decides what then -- and the slot drops them."""
        slot = self.slots[ev.worker_id]
        if not slot.alive:
            return  # (a look posted before the slot was killed)
        spell = Spell(ev.since, ev.timeout, ev.cluster, ev.setting)
        if not self.no_workers.empty(slot.id, spell, now):
            return
        dropped = []
        for batch in list(slot.queue):
            if slot.kill_reason is not None:
                break  # the map failed and its slot is killed: the kill ends the rest
            dropped.append(batch.batch_id)
            self._on_BatchFailed(BatchFailed(slot.id, batch.batch_id, [], spell.error(slot.id),
                                             0.0), now, out)
        if dropped:
            out.append(DropBatches(slot.id, tuple(dropped)))

    def _on_ClusterBack(self, ev: ClusterBack, now: float, out: list[Instruction]) -> None:
        self.no_workers.back(ev.worker_id)

    def _on_Tick(self, ev: Tick, now: float, out: list[Instruction]) -> None:
        pass

    def _on_ResultsConsumed(self, ev: ResultsConsumed, now: float, out: list[Instruction]) -> None:
        job = self.jobs.get(ev.job_id)
        if job is not None:
            job.consumed += ev.n

    # -- helpers
    def _pop_batch(self, worker_id: int, batch_id: int, now: float,
                   out: list[Instruction]) -> tuple[WorkerSlot, TaskBatch | None]:
        slot = self.slots[worker_id]
        for batch in slot.queue:
            if batch.batch_id == batch_id:
                slot.queue.remove(batch)
                break
        else:
            return slot, None
        batch.job.in_flight.pop(batch_id, None)
        self._touched.append(batch.job)
        self._open.add(slot.id)
        if slot.queue:
            head = slot.queue[0]
            if not self.clock_at_start:
                head.started_at = head.started_at or now
            if head.job.task_timeout is not None or self.task_timeout is not None:
                self.deadlines.push(self, slot)  # (without a timeout it has no deadline)
            if self.withheld and self.withheld.get(slot.id) == head.batch_id:
                del self.withheld[slot.id]  # its worker is free for it now
                out.append(SendHeld(slot.id, head.batch_id))
        elif slot.state == "busy":
            slot.state = "idle"
        return slot, batch

    def _account(self, slot: WorkerSlot, batch: TaskBatch, n: int, elapsed: float) -> None:
        slot.tasks_done += n
        slot.since_start += n
        slot.busy += elapsed

    def _record(self, job: Job, indices: Any, results: list[Any],
                out: list[Instruction]) -> None:
        job.ledger.record(indices, results)
        if job.streaming and job.active:
            out.append(Deliver(job, indices, results))

    def _task_error(self, job: Job, item: Any, index: int, worker_id: int, exc: BaseException,
                    out: list[Instruction],
                    rest: Iterable[tuple[Any, list[Any]]] = ()) -> None:
        """An item failed: run it again, collect its error, or fail the map (failures.py).
        `rest`: (indices, items) of its batch left unrun, run on if the map goes on."""
        cause = exc.__cause__
        failed_before = job.attempts.get(index, 0)
        error = TaskError(item, index, type(exc).__name__, str(exc),
                          getattr(cause, "tb", "") or "", worker_id, failed_before + 1)
        policy = job.failure
        if policy is not None and job.active and not job.stopping:
            again = policy.retry(exc, failed_before)
            if again or policy.collects:
                for indices, items in rest:
                    if items:
                        job.requeued.appendleft((indices, items))
                        self._feed_again(job)
            if again:
                job.attempts[index] = failed_before + 1
                job.retried.append(error)
                job.requeued.appendleft(((index,), [item]))
                self._feed_again(job)
                return
            if policy.collects:
                job.errors.append(error)
                job.failed += 1
                value = policy.placeholder(error)
                job.ledger.record((index,), [value], counted=False)
                if not job.ledger.keep_results:  # an imap: its consumer gets the placeholder
                    out.append(Deliver(job, (index,), [value]))  # (a checkpoint stores none)
                return
        job.errors.append(error)
        job.failed += 1
        self._fail(job, exc)

    def _fail(self, job: Job, exc: BaseException) -> None:
        if not job.active:
            return
        if job.error is None:
            job.error = exc
        job.stopping = "failed"
        self._touched.append(job)
        job.requeued.clear()
        for slot in self.slots:  # the rest of the map stops: its in-flight work is cut short
            if any(b.job is job for b in slot.queue) and slot.kill_reason is None:
                self._kill(slot, "cancel")

    def _kill(self, slot: WorkerSlot, reason: KillReason,
              out: list[Instruction] | None = None) -> None:
        if slot.state == "dead":
            return
        slot.kill_reason = slot.kill_reason or reason
        if slot.id not in self._pending_kills:
            self._pending_kills.append(slot.id)

    # -- advancing
    def _advance(self, now: float, out: list[Instruction]) -> None:
        heap = self.deadlines._heap  # (looked at here: a call per event costs more)
        if heap and heap[0][0] <= now:
            for wid in self.overdue(now):
                self._on_DeadlinePassed(DeadlinePassed(wid), now, out)
        self._dispatch(now, out)
        if self._pending_kills:
            for wid in self._pending_kills:
                if self.slots[wid].alive:
                    out.append(KillWorker(wid))
            self._pending_kills.clear()
        if self._touched or self._check_all:
            self._finish_jobs(now, out)
        if not (self._all_up and self.keep_alive and not (
                self._lifespan_given or self.held or self.resharing or self.ending
                or self.max_tasks is not None or self.max_memory is not None)):
            self._manage_workers(now, out)  # (the line above: its first test, cheapest first)

    def _running(self) -> Running:
        by_job: dict[int, int] = {}
        total = 0
        memory = 0.0
        for slot in self.slots:
            if slot.queue:
                total += 1
                jid = slot.queue[0].job.id
                by_job[jid] = by_job.get(jid, 0) + 1
                memory += slot.rss + slot.queue[0].memory  # declared on top of its own
            elif slot.alive:
                memory += slot.rss
        return Running(total, by_job, memory)

    def _dispatch(self, now: float, out: list[Instruction]) -> None:
        if self.halted or self.resharing or not self._feeding:
            return
        slots, open_ids = self.slots, self._open
        if len(open_ids) == 1:  # the usual case under load: the worker that just finished
            order = [slots[next(iter(open_ids))]]
        else:
            order = sorted((slots[i] for i in sorted(open_ids)), key=_queue_length)
        while order:  # a batch to each open slot in turn, then another: every worker
            more = []  # starts a batch before any is given a second to queue
            for slot in order:
                if not self._has_room(slot):
                    self._open.discard(slot.id)  # until a batch leaves it or it is ready
                    continue
                if not self._give_batch(slot, now, out):
                    continue
                if not self._feeding:
                    return
                more.append(slot)
            order = more

    def _has_room(self, slot: WorkerSlot) -> bool:
        """Whether a slot may take a batch as far as the slot alone goes; what makes it
        False changes only when a batch leaves the slot or its worker is replaced."""
        queue = slot.queue
        if not queue:
            return slot.state in ("idle", "busy") and slot.kill_reason is None and (
                not slot.over_memory)
        return (len(queue) < 2 and slot.state in ("idle", "busy") and slot.kill_reason is None
                and not slot.over_memory
                # a task under a timeout starts when its worker is free
                and self.timeout_of(queue[-1].job) is None)

    def _n_ready(self) -> int:
        return sum(1 for s in self.slots if s.state in ("idle", "busy"))

    def _feed_again(self, job: Job) -> None:
        """A job given work back (a dead worker's batches) feeds again, in its place by
        submission order."""
        if self._feeding.get(job.id) is job:
            return
        self._feeding[job.id] = job
        order = {j.id: k for k, j in enumerate(self.jobs)}  # rare (a death): a walk is fine
        self._feeding = dict(sorted(self._feeding.items(), key=lambda kv: order.get(kv[0], -1)))

    def _candidates(self, slot: WorkerSlot, queued: bool) -> Generator[Job, None, None]:
        """The jobs a slot may take a batch of, in submission order; jobs with nothing left to
        hand out are dropped from `_feeding` as they are passed over. A slot with a batch
        queued takes only more of the same map, or -- after a single call -- the next one."""
        last = slot.queue[-1].job if queued else None
        dead = []
        try:
            for jid, job in self._feeding.items():
                if job.stopping or not job.active or (job.exhausted and not job.requeued):
                    dead.append(jid)
                    continue
                if last is not None and job is not last and not (last.single and job.single):
                    continue
                yield job
                if last is not None:
                    return  # a queue takes its one candidate or nothing: no walk over the rest
        finally:
            for jid in dead:
                del self._feeding[jid]

    def _give_batch(self, slot: WorkerSlot, now: float, out: list[Instruction]) -> bool:
        queued = bool(slot.queue)
        feeding = self._feeding
        if len(feeding) == 1:  # one map to feed (the usual case): what _candidates does, inline
            ((jid, job),) = feeding.items()
            if job.stopping or not job.active or (job.exhausted and not job.requeued):
                del feeding[jid]
                return False
            if queued:
                last = slot.queue[-1].job
                if job is not last and not (last.single and job.single):
                    return False
            return self._give_from((job,), slot, queued, now, out)
        candidates = self._candidates(slot, queued)
        try:
            return self._give_from(candidates, slot, queued, now, out)
        finally:
            candidates.close()  # drops what it passed over

    def _give_from(self, candidates: Iterable[Job], slot: WorkerSlot, queued: bool, now: float,
                   out: list[Instruction]) -> bool:
        running = None
        for job in candidates:
            timeout = job.task_timeout if job.task_timeout is not None else self.task_timeout
            if queued and timeout is not None:
                continue  # a task under a timeout starts when its worker is free
            quota = None
            lifespan = job.lifespan if job.lifespan is not None else self.max_tasks
            if lifespan is not None:
                quota = lifespan - slot.since_start - slot.queued_items()
                if quota <= 0:
                    continue
            if job.max_active is not None:
                active = job.max_active - job.in_flight_items()
                if active <= 0:
                    continue
                quota = active if quota is None else min(quota, active)
            if not queued and (self._capped or job.limit is not None):
                running = running or self._running()
                if not self._admits(job, running):
                    continue
            room = None
            if job.max_ahead is not None:  # read no further than max_ahead past the consumer
                room = job.max_ahead - (job.ledger.done - job.consumed + job.in_flight_items())
                if room <= 0:
                    continue
            remaining = None if job.total is None else job.total - job.read + (
                sum(len(c[1]) for c in job.requeued) if job.requeued else 0)
            size = 1 if (timeout is not None or job.memory is not None
                         or remaining == 1) else job.chunker.fixed or (  # (fixed: no count)
                job.chunker.next_size(remaining, self._n_ready()))
            if queued and (job.memory is not None or not job.chunker.may_prefetch(size)):
                return False  # (a queued task would start unchecked by a memory budget)
            if quota is not None:
                size = min(size, quota)
            if room is not None and job.max_ahead is not None:
                size = max(1, min(size, room, job.max_ahead // 2))
            taken = self._take(job, size)
            if taken is None:
                continue
            batch = TaskBatch(next(self._batch_ids), job, taken[0], taken[1], slot.id,
                              None if queued or self.clock_at_start else now,
                              dispatched_at=now)
            if job.memory is not None:
                batch.memory = max(job.memory(item) for item in batch.items)
            job.in_flight[batch.batch_id] = batch
            slot.queue.append(batch)
            if not queued and timeout is not None:  # (no timeout: no deadline to push)
                self.deadlines.push(self, slot)
            slot.state = "busy"
            slot.lifespan = lifespan
            if lifespan is not None:
                self._lifespan_given = True
            if job.func_key in slot.funcs:  # (_remember_func's usual case, inline)
                slot.funcs.move_to_end(job.func_key)
                send_func = False
            else:
                send_func = self._remember_func(slot, job.func_key, out)
            out.append(Dispatch(slot.id, batch, send_func, queued,
                                self.prefetch_max_bytes if queued else None))
            return True
        return False

    def _remember_func(self, slot: WorkerSlot, key: int, out: list[Instruction]) -> bool:
        """True when the worker must be sent the function first."""
        if key in slot.funcs:
            slot.funcs.move_to_end(key)
            return False
        slot.funcs[key] = True
        if len(slot.funcs) > FUNCS_PER_WORKER:
            old, _ = slot.funcs.popitem(last=False)
            out.append(ForgetFunc(slot.id, old))
        return True

    def _admits(self, job: Job, running: Running) -> bool:
        cap = self.scheduler.capacity(job, running, self.history)
        if cap is not None and cap <= 0:
            return False
        limit = job.limit
        if limit is not None:
            busy = sum(n for jid, n in running.by_job.items()
                       if any(j.id == jid and j.limit is not None and j.limit.key == limit.key
                              for j in self.jobs))
            if busy >= limit.n:
                return False
        return True

    def _take(self, job: Job, size: int) -> tuple[Any, list[Any]] | None:
        """Up to `size` items of a map, requeued ones first: (indices, items) or None."""
        chunks, got = [], 0
        while job.requeued and got < size:
            indices, items = job.requeued.popleft()
            if got + len(items) > size:
                k = size - got
                job.requeued.appendleft((indices[k:], items[k:]))
                indices, items = indices[:k], items[:k]
            chunks.append((indices, items))
            got += len(items)
        if got < size and not job.exhausted:
            indices, items = job.source.take(size - got)
            job.read += len(items)
            if len(items) < size - got or (job.source.length is not None
                                            and job.read >= job.source.length):
                job.exhausted = True
                self._touched.append(job)
            if items:
                job.ledger.note_read(indices, items)
                chunks.append((indices, items))
            exc = job.source.error
            if exc is None and job.total is not None and job.source.length is None and (
                    job.read > job.total or (job.exhausted and job.read < job.total)):
                exc = ValueError(  # a lazy input whose stated length (iterable_len) was wrong
                    f"iterable_len={job.total}, but the iterable gave "
                    f"{'more' if job.read > job.total else job.read} items")
            if exc is not None:  # the user's iterable raised: see _input_failed
                self._input_failed(job, exc)
        if not chunks:
            return None
        if len(chunks) == 1:
            return chunks[0]
        return (_compact([i for c in chunks for i in c[0]]),
                [item for c in chunks for item in c[1]])

    def _input_failed(self, job: Job, exc: BaseException) -> None:
        """The input iterable raised. As with multiprocessing, what was read before runs to
        the end and reaches the consumer; then the map fails with the input's own error,
        noted as one and listed in the report's errors (index None: no item failed)."""
        import traceback
        job.exhausted = True
        add_note(exc, f"nbpar: raised by the input iterable after {job.read} items")
        job.input_error = exc
        job.errors.append(TaskError(
            None, None, type(exc).__name__,
            f"the input iterable raised after {job.read} items (an input error; the items "
            f"read before it ran): {exc}",
            "".join(traceback.format_exception(exc)), None))

    def _finish_jobs(self, now: float, out: list[Instruction]) -> None:
        if self._check_all:
            touched, self._check_all = list(self.jobs), False
        else:
            touched = self._touched
        self._touched = []
        for job in touched:
            if job.in_flight or not (job.stopping or (job.exhausted and not job.requeued)):
                continue
            if not self.jobs.has(job):
                continue  # finished already (touched twice)
            if job.input_error is not None and job.error is None:
                job.error, job.stopping = job.input_error, "failed"
            self.jobs.remove(job)
            job.finished_at = now
            if self.halted and self.halt_scope == job.id:
                self.halted, self.halt_scope = False, None  # that map's HALT ends with it
            job.halt_clock(now, False)
            job.status = ("failed" if job.stopping == "failed" else
                          "stopped" if job.stopping else "finished")
            if job.chunker.per_item is not None:
                self.learned.pop(job.func_key, None)  # the newest last: the oldest go first
                self.learned[job.func_key] = job.chunker.per_item
                if len(self.learned) > LEARNED:
                    del self.learned[next(iter(self.learned))]
            job.func = None  # nothing more to run: let the caller's objects go
            job.source = ListSource([])
            if not self.keep_alive and not self.jobs and any(s.alive for s in self.slots):
                self.held.append(job)  # finish once the workers retired (exit results)
            else:
                out.append(self._finish(job, now))

    def _finish(self, job: Job, now: float) -> FinishJob:
        error = job.error
        # a single call's result went to its future already: a worker_exit error is left
        # for the pool's join() (or the next map) to raise, not dropped
        if error is None and self.exit_error is not None and not job.single:
            error, self.exit_error = self.exit_error, None
            job.status = "failed"
        if job.single and error is None and job.status == "finished":
            return FinishJob(job, None, None)  # its result went to its future already
        report = self.report(job, now)
        if not job.single:
            self.history.append(report)
        if error is None and job.status == "stopped":
            how = ("" if job.ledger.rest is not None else  # its results went to its caller
                   "; continue it with pool.map(func, report=err.report)")
            total = report.total if report.total is not None else "?"
            error = StoppedError(
                f"the map was stopped: {report.done} of {total} items done{how}", report)
        return FinishJob(job, error, report)

    def _settled(self) -> bool:
        """Every worker up and none with a lifespan (the cheap checks first)."""
        if not self._all_up:
            self._all_up = all(s.state in ("idle", "busy") for s in self.slots)
        return self._all_up and not (self._lifespan_given and any(
            s.lifespan is not None for s in self.slots))

    def _manage_workers(self, now: float, out: list[Instruction]) -> None:
        if not (self.held or self.resharing or self.ending or self.max_tasks is not None
                or self.max_memory is not None) and (
                self.jobs or self.keep_alive) and self._settled():
            return  # every worker up and wanted: nothing to start or retire
        self._all_up = False  # (a worker may be started or retired below)
        alive = any(s.alive for s in self.slots)
        retiring = any(s.state == "retiring" for s in self.slots)
        if not retiring and (self.jobs or not alive):  # the retirements held for are done
            while self.held:
                out.append(self._finish(self.held.pop(0), now))
        if not alive:
            if self.resharing:
                out.extend(ApplyShared(p) for p in self.resharing)
                self.resharing.clear()
        wanted = any(not j.stopping for j in self.jobs) and not self.shut_down
        for slot in self.slots:
            if slot.state == "dead":
                if self.resharing:
                    continue
                if not self.init_broken and (wanted or (
                        self.keep_alive and not self.ending and self.last_job is not None)):
                    slot.state = "starting"
                    out.append(StartWorker(slot.id))
                continue
            if slot.state != "idle" or slot.kill_reason is not None:
                continue
            retire = bool(self.resharing) or (
                not self.jobs and (self.ending or not self.keep_alive)) or (
                slot.lifespan is not None and slot.since_start >= slot.lifespan)
            if slot.over_memory and not retire:
                retire = True
                slot.recycled += 1  # retired for its memory alone: the report counts it
            if retire:
                slot.state = "retiring"
                slot.kill_reason = "retire"
                out.append(RetireWorker(slot.id))
        if not any(s.alive for s in self.slots):
            if self.ending and not self.jobs and not self.shut_down:
                self.shut_down = True
                out.append(Shutdown())

    # -- reports
    def report(self, job: Job | None, now: float,
               positions: Callable[[int], int | None] | None = None) -> Report:
        job = job if job is not None else self.last_job
        positions = positions or self.positions
        workers = tuple(self._worker_info(s, positions) for s in self.slots)
        exits = tuple(self.exit_results)
        if job is None:
            return Report("idle", 0, 0, 0, 0.0, workers, (), exits, pool_halted=self.halted,
                          running_maps=len(self.jobs))
        if job.active:
            status = "halted" if self.halted else "running"
        else:
            status = job.status
        end = job.finished_at if job.finished_at is not None else now
        elapsed = end - job.started_at if job.started_at is not None else 0.0
        halted = job.halted_for + (end - job.halted_at if job.halted_at is not None else 0.0)
        return Report(status, job.total, job.ledger.done, job.failed, elapsed, workers,
                      tuple(job.errors), exits, job.func_name, job.id, job.ledger.view(()),
                      tuple(job.retried), prior=job.ledger.prior, halted=halted,
                      pool_halted=self.halted, running_maps=len(self.jobs))

    def _worker_info(self, slot: WorkerSlot,
                     positions: Callable[[int], int | None] | None) -> WorkerInfo:
        item = index = None
        if slot.queue:
            batch = slot.queue[0]
            pos = positions(slot.id) if positions else 0
            pos = pos if pos is not None and 0 <= pos < len(batch.items) else 0
            item, index = batch.items[pos], batch.indices[pos]
        memory: dict[str, Any] = {} if self.max_memory is None else {
            "memory": slot.rss or None, "recycled": slot.recycled}
        state = "retired" if slot.state == "dead" and slot.retired else slot.state
        return WorkerInfo(slot.id, slot.pid, state, slot.tasks_done, slot.busy, item, index,
                          **memory)


def _noted(exc: BaseException, place: str) -> BaseException:
    add_note(exc, f"nbpar: {place}")
    return exc


# event type -> BossState._on_<its name>: every event has its handler, found at import
_HANDLERS: dict[type[Event], Callable[[BossState, Any, float, list[Instruction]], None]] = {
    kind: getattr(BossState, f"_on_{kind.__name__}") for kind in EVENTS}


def _queue_length(slot: WorkerSlot) -> int:
    return len(slot.queue)


def _compact(indices: Sequence[int]) -> range | tuple[int, ...]:
    """A contiguous run of indices as a range (cheap to store and to slice)."""
    if indices and indices[-1] - indices[0] == len(indices) - 1:
        return range(indices[0], indices[-1] + 1)
    return tuple(indices)

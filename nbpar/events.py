"""What goes into the Boss's state machine (events) and what comes out (instructions).

Plain records, one per kind: the Boss builds an event from what it hears, `BossState.handle`
returns instructions for the Boss to carry out. They are made for every task, so they are
slotted, unfrozen dataclasses (a frozen one costs three times as much to build); nobody
changes one after it is made, except that the state machine numbers each event it takes
(`stimulus_id`), so that its story (`BossState.story`) can say what led to what.

This is the Boss's one vocabulary: what a caller sends on the control pipe (a new map, a
signal, a report request, a cancelled map, results consumed, new shared objects) is one of
these events too, handed to the state machine as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .errors import ErrorPayload
    from .reports import Report
    from .signals import Signal
    from .state import Job, TaskBatch

__all__ = [
    "EVENTS",
    "Event",
    "Instruction",
    "JobSubmitted",
    "WorkerReady",
    "BatchStarted",
    "BatchDone",
    "BatchFailed",
    "DispatchFailed",
    "DispatchHeld",
    "WorkerDied",
    "StartFailed",
    "CancelJob",
    "Reshare",
    "WorkerInitFailed",
    "WorkerExited",
    "SignalReceived",
    "ReportRequested",
    "DeadlinePassed",
    "Tick",
    "WorkerMeasured",
    "ResultsConsumed",
    "ClusterEmpty",
    "ClusterBack",
    "StartWorker",
    "Dispatch",
    "SendHeld",
    "ForgetFunc",
    "DropBatches",
    "KillWorker",
    "RetireWorker",
    "Deliver",
    "FinishJob",
    "Reply",
    "ApplyShared",
    "Shutdown",
]


# ----------------------------------------------------------------------------- events

@dataclass(slots=True)
class Event:
    """What the state machine takes. `stimulus_id` is given by the machine as it takes the
    event (0 until then): its story and the instructions it gave are found by that number.

    `ids` (a class attribute) names the fields that identify an event in the story: small
    values only, so that the story keeps no results, items or maps alive. `_brief(event)`
    reads them in one C call (an attrgetter): the class and those values, or the class
    alone when it has no ids. `told` (a class attribute) is False for an event that changes
    nothing and comes often, which the story leaves out (a report request: a widget asks ten
    a second, and would push out the steps that matter)."""

    ids: ClassVar[tuple[str, ...]] = ()
    told: ClassVar[bool] = True
    _brief: ClassVar[Callable[[Any], Any]]
    stimulus_id: int = field(default=0, kw_only=True)

    def __init_subclass__(cls) -> None:  # (no super(): slots=True makes a new class)
        cls._brief = attrgetter("__class__", *cls.ids)


@dataclass(slots=True)
class JobSubmitted(Event):
    """A new map (or single call) from the caller."""

    ids: ClassVar[tuple[str, ...]] = ("job.id",)
    job: Job


@dataclass(slots=True)
class WorkerReady(Event):
    """A worker is up (worker_init done) and takes batches."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "pid")
    worker_id: int
    pid: int


@dataclass(slots=True)
class BatchStarted(Event):
    """The worker has the function and the items: the task's own clock starts now."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "batch_id")
    worker_id: int
    batch_id: int


@dataclass(slots=True)
class BatchDone(Event):
    """Every task of a batch returned: `results` in the batch's order."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "batch_id")
    worker_id: int
    batch_id: int
    results: list[Any]
    elapsed: float


@dataclass(slots=True)
class BatchFailed(Event):
    """A task raised (or its result would not pickle): `results` holds what finished before."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "batch_id")
    worker_id: int
    batch_id: int
    results: list[Any]
    error: Any  # ErrorPayload from a worker, or an exception built on this side
    elapsed: float


@dataclass(slots=True)
class DispatchFailed(Event):
    """A batch could not be sent (its items do not pickle); the worker never saw it."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "batch_id")
    worker_id: int
    batch_id: int
    error: BaseException


@dataclass(slots=True)
class DispatchHeld(Event):
    """The Boss kept a batch back as its Dispatch asked (`hold_over`: its encoded body is
    larger than that): the worker has not got it; it waits for a `SendHeld`."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "batch_id", "nbytes")
    worker_id: int
    batch_id: int
    nbytes: int


@dataclass(slots=True)
class WorkerDied(Event):
    """A worker's process (or thread) is gone, whatever the reason."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "exitcode")
    worker_id: int
    exitcode: int | None
    position: int | None = None  # where in its current batch the worker was
    cause: str | None = None  # what killed it, when the backend knows (its fork server died)


@dataclass(slots=True)
class StartFailed(Event):
    """The backend could not start a worker at all."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id",)
    worker_id: int
    error: BaseException


@dataclass(slots=True)
class CancelJob(Event):
    """Stop one map only (its consumer went away, or its future was cancelled)."""

    ids: ClassVar[tuple[str, ...]] = ("job_id",)
    job_id: int


@dataclass(slots=True)
class Reshare(Event):
    """New shared objects (already packed): retire every worker, then apply them."""

    prepared: Any


@dataclass(slots=True)
class WorkerInitFailed(Event):
    """worker_init raised in a worker: no map can run on these workers."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id",)
    worker_id: int
    error: ErrorPayload


@dataclass(slots=True)
class WorkerExited(Event):
    """worker_exit ran (or raised); the process is about to end."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id",)
    worker_id: int
    result: Any
    error: ErrorPayload | None
    hooked: bool = True  # the worker had a worker_exit: its result is an exit result


@dataclass(slots=True)
class SignalReceived(Event):
    """A Signal from the caller (a button, `pool.halt()`, Jupyter's interrupt)."""

    ids: ClassVar[tuple[str, ...]] = ("signal", "for_job")
    signal: Signal
    reply: Future[Report] | None = None  # (SEND_REPORT) where the report goes
    for_job: int | None = None  # the map a click was made for: dropped once that map ended


@dataclass(slots=True)
class ReportRequested(Event):
    """A caller asks for a report (taken even after STOP_LISTENING)."""

    told: ClassVar[bool] = False
    reply: Future[Report]


@dataclass(slots=True)
class DeadlinePassed(Event):
    """A worker's task ran past its deadline (task_timeout, or the set-up's)."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id",)
    worker_id: int


@dataclass(slots=True)
class Tick(Event):
    """Nothing arrived, but time passed (a task deadline may have come)."""


@dataclass(slots=True)
class WorkerMeasured(Event):
    """The resident memory of a worker's process, measured by the Boss (for schedulers)."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "rss")
    worker_id: int
    rss: float


@dataclass(slots=True)
class ResultsConsumed(Event):
    """The consumer of a lazy map (imap) took `n` more results: it may read further."""

    ids: ClassVar[tuple[str, ...]] = ("job_id", "n")
    job_id: int
    n: int


@dataclass(slots=True)
class ClusterEmpty(Event):
    """A worker slot whose batches run on a cluster (Dask's) found it without workers, since
    `since` (time.monotonic() at the first look that found none; said again at each look
    while batches wait). `timeout`: the wait its settings allow; `cluster` and `setting`:
    how an error names the cluster and that setting. What follows is the state machine's
    policy (no_workers.py), not the slot's."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "since")
    worker_id: int
    since: float
    timeout: float
    cluster: str
    setting: str


@dataclass(slots=True)
class ClusterBack(Event):
    """The slot's cluster has workers again (a look found some, or a batch ran)."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id",)
    worker_id: int


# ----------------------------------------------------------------------------- instructions

@dataclass(slots=True)
class Instruction:
    """What the state machine asks the Boss to do (`ids` and `_brief`: as for `Event`)."""

    ids: ClassVar[tuple[str, ...]] = ()
    _brief: ClassVar[Callable[[Any], Any]]

    def __init_subclass__(cls) -> None:  # (no super(): slots=True makes a new class)
        cls._brief = attrgetter("__class__", *cls.ids)


@dataclass(slots=True)
class StartWorker(Instruction):
    """Start a worker in this slot."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id",)
    worker_id: int


@dataclass(slots=True)
class Dispatch(Instruction):
    """Send a batch to a worker (the function first, when `send_func`)."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "batch.batch_id", "batch.job.id")
    worker_id: int
    batch: TaskBatch
    send_func: bool
    queued: bool  # the worker is still busy: this batch waits behind another
    # (queued batches) a body encoded larger than this many bytes is not sent ahead: the
    # Boss keeps it and says so (DispatchHeld), and sends it on SendHeld. None: send it.
    hold_over: int | None = None


@dataclass(slots=True)
class SendHeld(Instruction):
    """Send the batch the Boss holds for a worker (see DispatchHeld): its worker is free."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "batch_id")
    worker_id: int
    batch_id: int


@dataclass(slots=True)
class ForgetFunc(Instruction):
    """A worker may drop a function it keeps unpickled (the least recently used)."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "key")
    worker_id: int
    key: int


@dataclass(slots=True)
class DropBatches(Instruction):
    """A slot is to cancel these batches and send nothing of them back: the machine failed
    them without their running (their cluster had no workers, see ClusterEmpty)."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id", "batch_ids")
    worker_id: int
    batch_ids: tuple[int, ...]


@dataclass(slots=True)
class KillWorker(Instruction):
    """Kill a worker now (STOP_RIGHTNOW, a timeout, a failed map's running tasks)."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id",)
    worker_id: int


@dataclass(slots=True)
class RetireWorker(Instruction):
    """Ask an idle worker to run worker_exit and end."""

    ids: ClassVar[tuple[str, ...]] = ("worker_id",)
    worker_id: int


@dataclass(slots=True)
class Deliver(Instruction):
    """Hand results to a streaming map's consumer (imap, submit)."""

    ids: ClassVar[tuple[str, ...]] = ("job.id",)
    job: Job
    indices: Any  # a range or a tuple of input indices
    results: list[Any]


@dataclass(slots=True)
class FinishJob(Instruction):
    """A map has ended: its caller gets the error (None: it finished) and its report."""

    ids: ClassVar[tuple[str, ...]] = ("job.id", "job.status")
    job: Job
    error: BaseException | None
    report: Report | None = None


@dataclass(slots=True)
class Reply(Instruction):
    """Answer a report request."""

    reply: Future[Report] | None  # (None: a SEND_REPORT signal without a reply)
    report: Report


@dataclass(slots=True)
class ApplyShared(Instruction):
    """Every worker is gone: new shared objects may be used from now on."""

    prepared: Any


@dataclass(slots=True)
class Shutdown(Instruction):
    """The pool has ended: the Boss stops."""


# every event the state machine takes, for its table of handlers (state.py)
EVENTS: tuple[type[Event], ...] = (
    JobSubmitted, WorkerReady, BatchStarted, BatchDone, BatchFailed, DispatchFailed,
    DispatchHeld, WorkerDied, StartFailed, CancelJob, Reshare, WorkerInitFailed, WorkerExited,
    SignalReceived, ReportRequested, DeadlinePassed, Tick, WorkerMeasured, ResultsConsumed,
    ClusterEmpty, ClusterBack)

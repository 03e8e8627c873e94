"""What goes into the Boss's state machine (events) and what comes out (instructions).

Plain records, one per kind: the Boss builds an event from what it hears, `BossState.handle`
returns instructions for the Boss to carry out. They are made for every task, so they are
slotted, unfrozen dataclasses (a frozen one costs three times as much to build); nobody
changes one after it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import ErrorPayload
    from .reports import Report
    from .signals import Signal
    from .state import Job, TaskBatch

__all__ = [
    "JobSubmitted",
    "WorkerReady",
    "BatchStarted",
    "BatchDone",
    "BatchFailed",
    "DispatchFailed",
    "WorkerDied",
    "StartFailed",
    "CancelJob",
    "Reshare",
    "WorkerInitFailed",
    "WorkerExited",
    "SignalReceived",
    "DeadlinePassed",
    "Tick",
    "WorkerMeasured",
    "ResultsConsumed",
    "StartWorker",
    "Dispatch",
    "ForgetFunc",
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
class JobSubmitted:
    job: Job


@dataclass(slots=True)
class WorkerReady:
    worker_id: int
    pid: int


@dataclass(slots=True)
class BatchStarted:
    """The worker has the function and the items: the task's own clock starts now."""

    worker_id: int
    batch_id: int


@dataclass(slots=True)
class BatchDone:
    worker_id: int
    batch_id: int
    results: list
    elapsed: float


@dataclass(slots=True)
class BatchFailed:
    """A task raised (or its result would not pickle): `results` holds what finished before."""

    worker_id: int
    batch_id: int
    results: list
    error: Any  # ErrorPayload from a worker, or an exception built on this side
    elapsed: float


@dataclass(slots=True)
class DispatchFailed:
    """A batch could not be sent (its items do not pickle); the worker never saw it."""

    worker_id: int
    batch_id: int
    error: BaseException


@dataclass(slots=True)
class WorkerDied:
    worker_id: int
    exitcode: int | None
    position: int | None = None  # where in its current batch the worker was
    cause: str | None = None  # what killed it, when the backend knows (its fork server died)


@dataclass(slots=True)
class StartFailed:
    """The backend could not start a worker at all."""

    worker_id: int
    error: BaseException


@dataclass(slots=True)
class CancelJob:
    """Stop one map only (its consumer went away, or its future was cancelled)."""

    job_id: int


@dataclass(slots=True)
class Reshare:
    """New shared objects (already packed): retire every worker, then apply them."""

    prepared: Any


@dataclass(slots=True)
class WorkerInitFailed:
    worker_id: int
    error: ErrorPayload


@dataclass(slots=True)
class WorkerExited:
    """worker_exit ran (or raised); the process is about to end."""

    worker_id: int
    result: Any
    error: ErrorPayload | None
    hooked: bool = True  # the worker had a worker_exit: its result is an exit result


@dataclass(slots=True)
class SignalReceived:
    signal: Signal
    reply: Any = None
    for_job: int | None = None  # the map a click was made for: dropped once that map ended


@dataclass(slots=True)
class DeadlinePassed:
    worker_id: int


@dataclass(slots=True)
class Tick:
    """Nothing arrived, but time passed (a task deadline may have come)."""


@dataclass(slots=True)
class WorkerMeasured:
    """The resident memory of a worker's process, measured by the Boss (for schedulers)."""

    worker_id: int
    rss: float


@dataclass(slots=True)
class ResultsConsumed:
    job_id: int
    n: int


# ----------------------------------------------------------------------------- instructions

@dataclass(slots=True)
class StartWorker:
    worker_id: int


@dataclass(slots=True)
class Dispatch:
    worker_id: int
    batch: TaskBatch
    send_func: bool
    queued: bool  # the worker is still busy: this batch waits behind another


@dataclass(slots=True)
class ForgetFunc:
    worker_id: int
    key: int


@dataclass(slots=True)
class KillWorker:
    worker_id: int


@dataclass(slots=True)
class RetireWorker:
    worker_id: int


@dataclass(slots=True)
class Deliver:
    job: Job
    indices: Any
    results: list


@dataclass(slots=True)
class FinishJob:
    job: Job
    error: BaseException | None
    report: Report | None = None


@dataclass(slots=True)
class Reply:
    reply: Any
    report: Report


@dataclass(slots=True)
class ApplyShared:
    prepared: Any


@dataclass(slots=True)
class Shutdown:
    pass

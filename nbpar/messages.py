"""The small frozen messages that cross between the Boss and its workers.

Bodies (items, results, functions) travel as nested pickled bytes, so a header always
decodes even when a body does not: a bad item or result is then named, never a hang.
On a process pipe, the two messages every task costs (Batch out, Done back) travel as a
fixed binary header before their body; the others are pickled (`to_wire` / `from_wire`).
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field

from .errors import ErrorPayload


PROGRESS_STEP = 256


def progress_span(n_items: int) -> int:
    """How many items a worker runs between two marks on its progress board: every item of
    a small batch (slow tasks: the mark costs nothing), blocks of PROGRESS_STEP in a large one
    (tiny tasks: a mark per item would cost as much as the task)."""
    return 1 if n_items <= PROGRESS_STEP else PROGRESS_STEP


class _Flat:
    """Pickles as (class, field values): the frozen dataclasses' default costs twice that."""

    __slots__ = ()

    def __reduce__(self):
        return (type(self), tuple(getattr(self, name) for name in self.__slots__))


# Boss -> worker
@dataclass(frozen=True, slots=True)
class Func(_Flat):
    """A function the worker keeps under `key` until told to forget it."""

    key: int
    body: object  # pickled function (processes) or the function itself (threads)


@dataclass(frozen=True, slots=True)
class Batch(_Flat):
    batch_id: int
    func_key: int
    star: bool
    body: object  # pickled list of items (processes) or the list itself (threads)


@dataclass(frozen=True, slots=True)
class Forget:
    key: int


@dataclass(frozen=True, slots=True)
class Retire:
    pass


# worker -> Boss
@dataclass(frozen=True, slots=True)
class Ready:
    pid: int


@dataclass(frozen=True, slots=True)
class Started:
    """Sent under task_timeout when a batch's first task starts (its set-up is over)."""

    batch_id: int


@dataclass(frozen=True, slots=True)
class InitFailed:
    error: ErrorPayload


@dataclass(frozen=True, slots=True)
class Done(_Flat):
    batch_id: int
    elapsed: float
    body: object  # pickled list of results


@dataclass(frozen=True, slots=True)
class Failed(_Flat):
    batch_id: int
    elapsed: float
    body: object  # pickled results of the items before the failing one
    error: ErrorPayload


@dataclass(frozen=True, slots=True)
class Log:
    record: dict  # a LogRecord's attributes, message already formatted


@dataclass(frozen=True, slots=True)
class Exited:
    body: object  # pickled return value of worker_exit
    error: ErrorPayload | None


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    """What a worker needs to know about its pool, sent once when it starts."""

    worker_id: int
    pass_worker_id: bool
    use_shared: bool
    use_worker_state: bool
    worker_init: object  # pickled callable or None
    worker_exit: object
    progress: object  # where the worker marks its position: a segment name, or (fork) the map
    sys_path: tuple = ()
    cwd: str | None = None
    log_level: int | None = None
    report_start: bool = False  # send Started before each batch (task_timeout's clock)
    funcs: dict | None = None  # key -> function, inherited (fork, threads): never pickled
    # the caller's world when the worker starts (process workers apply it before anything else)
    argv: tuple | None = None
    environ: dict | None = field(default=None, repr=False)
    authkey: bytes | None = field(default=None, repr=False)  # so manager proxies connect
    inner_threads: int | None = None  # cap on BLAS/OpenMP threads in a worker process
    pool_number: int | None = None  # the pool's place among the caller's: the process title


# ----------------------------------------------------------------------------- on the pipe

_BATCH = struct.Struct("<cqq?")  # b"B", batch_id, func_key, star; then the body
_DONE = struct.Struct("<cqd")  # b"D", batch_id, elapsed; then the body


def to_wire(msg) -> bytes:
    """The bytes of one pipe message. A pickle starts with b"\\x80", never with b"B" or
    b"D", so the header needs no pickling and the body no second pass through pickle."""
    kind = type(msg)
    if kind is Batch and type(msg.body) is bytes:
        return _BATCH.pack(b"B", msg.batch_id, msg.func_key, msg.star) + msg.body
    if kind is Done and type(msg.body) is bytes:
        return _DONE.pack(b"D", msg.batch_id, msg.elapsed) + msg.body
    return pickle.dumps(msg, protocol=5)


def from_wire(data: bytes):
    """The message `to_wire` made; a body is a view into `data`, not a copy."""
    tag = data[:1]
    if tag == b"B":
        _, batch_id, func_key, star = _BATCH.unpack_from(data)
        return Batch(batch_id, func_key, star, memoryview(data)[_BATCH.size:])
    if tag == b"D":
        _, batch_id, elapsed = _DONE.unpack_from(data)
        return Done(batch_id, elapsed, memoryview(data)[_DONE.size:])
    return pickle.loads(data)

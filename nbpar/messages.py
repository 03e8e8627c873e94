"""The small messages that cross between the Boss and its workers.

Bodies (items, results, functions) travel as nested pickled bytes, so a header always
decodes even when a body does not: a bad item or result is then named, never a hang.
On a process pipe, the messages every task costs (Batch out, Done back, and Started under
a task timeout) travel as a fixed binary header (and body); the others are pickled
(`to_wire` / `from_wire`).
Nobody changes a message once it is made; the ones made for every task (Batch, Started,
Done) are unfrozen all the same, since a frozen dataclass costs four times as much to build.
"""

from __future__ import annotations

import os
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


@dataclass(slots=True)
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


@dataclass(frozen=True, slots=True)
class Drop:
    """(to a Dask slot) The state machine failed these batches (their cluster had no
    workers): cancel them; nothing of theirs is to be sent back."""

    batch_ids: tuple


# worker -> Boss: what a slot whose batches run on a cluster sees of it (nbpar/no_workers.py)
@dataclass(frozen=True, slots=True)
class NoWorkers:
    """The cluster has had no workers since `since` (time.monotonic(), the first look that
    found none); said at each look while batches wait."""

    since: float
    timeout: float  # the wait the cluster's settings allow
    cluster: str  # how an error names the cluster
    setting: str  # and where that wait is set


@dataclass(frozen=True, slots=True)
class WorkersBack:
    """The cluster has workers again (a look found some, or a batch ran)."""


# worker -> Boss
@dataclass(frozen=True, slots=True)
class Ready:
    pid: int


@dataclass(slots=True)
class Started:
    """Sent under task_timeout when a batch's first task starts (its set-up is over)."""

    batch_id: int


@dataclass(frozen=True, slots=True)
class InitFailed:
    error: ErrorPayload


@dataclass(slots=True)
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
_STARTED = struct.Struct("<cq")  # b"S", batch_id


def to_wire(msg) -> bytes:
    """The bytes of one pipe message. A pickle starts with b"\\x80", never with b"B", b"D"
    or b"S", so the header needs no pickling and the body no second pass through pickle."""
    kind = type(msg)
    if kind is Batch and type(msg.body) is bytes:
        return _BATCH.pack(b"B", msg.batch_id, msg.func_key, msg.star) + msg.body
    if kind is Done and type(msg.body) is bytes:
        return _DONE.pack(b"D", msg.batch_id, msg.elapsed) + msg.body
    if kind is Started:
        return _STARTED.pack(b"S", msg.batch_id)
    return pickle.dumps(msg, protocol=5)


def from_wire(data: bytes | memoryview):
    """The message `to_wire` made; a body is a view into `data`, not a copy."""
    tag = data[:1]
    if tag == b"B":
        _, batch_id, func_key, star = _BATCH.unpack_from(data)
        return Batch(batch_id, func_key, star, memoryview(data)[_BATCH.size:])
    if tag == b"D":
        _, batch_id, elapsed = _DONE.unpack_from(data)
        return Done(batch_id, elapsed, memoryview(data)[_DONE.size:])
    if tag == b"S":
        return Started(_STARTED.unpack_from(data)[1])
    return pickle.loads(data)


# multiprocessing.connection.Connection's framing, so either end may be a Connection: a
# signed 4-byte big-endian length, or -1 and an unsigned 8-byte one for 2 GiB and more
_LENGTH = struct.Struct("!i")
_LONG_LENGTH = struct.Struct("!Q")
_READ_SIZE = 65536
_JOINED_UP_TO = 16384  # a body up to this size is written with its length in one call


class PipeEnd:
    """One end of a worker's pipe, framed as multiprocessing's Connection frames it.

    A read takes what the pipe holds, up to 64 KiB, so a message costs one system call, not
    two (length, then body), and messages that arrived together are all taken at once:
    `has_message()` says whether a whole one is waiting here already (the pipe's fd will
    not wake a wait for it). A message, once begun, is read to its end.
    """

    __slots__ = ("fd", "_buf")

    def __init__(self, fd: int):
        self.fd = fd
        self._buf = b""

    def _header(self):
        """(where the body starts, its size) once the buffer holds the length, else None."""
        buf = self._buf
        if len(buf) < 4:
            return None
        size = _LENGTH.unpack_from(buf)[0]
        if size != -1:
            return 4, size
        return (12, _LONG_LENGTH.unpack_from(buf, 4)[0]) if len(buf) >= 12 else None

    def has_message(self) -> bool:
        head = self._header()
        return head is not None and len(self._buf) >= head[0] + head[1]

    def recv_bytes(self) -> bytes | memoryview:
        """The next message's bytes (a memoryview for one too large for a single read)."""
        while True:
            head = self._header()
            if head is not None:
                start, size = head
                end = start + size
                if len(self._buf) >= end:
                    data, self._buf = self._buf[start:end], self._buf[end:]
                    return data
                if end - len(self._buf) > _READ_SIZE:
                    return self._read_large(start, end)
            data = os.read(self.fd, _READ_SIZE)
            if not data:
                raise EOFError
            self._buf = self._buf + data if self._buf else data

    def recv_all(self) -> list:
        """The bytes of every whole message one read brings, in order (at least one: the
        read waits, or takes a large message to its end). What `recv_bytes` and
        `has_message` do message by message, in one call: the Boss reads many small results
        per wake-up."""
        out = [self.recv_bytes()]
        buf = self._buf
        pos, size = 0, len(buf)
        unpack = _LENGTH.unpack_from
        while size - pos >= 4:
            length = unpack(buf, pos)[0]
            if length == -1 or size - pos - 4 < length:
                break  # a long one, or one not whole yet: recv_bytes takes it next time
            out.append(buf[pos + 4:pos + 4 + length])
            pos += 4 + length
        if pos:
            self._buf = buf[pos:]
        return out

    def _read_large(self, start, end):
        """The rest of a large message, read straight into one buffer (no re-joining)."""
        whole = bytearray(end)
        pos = len(self._buf)
        whole[:pos] = self._buf
        self._buf = b""
        view = memoryview(whole)
        while pos < end:
            n = os.readv(self.fd, [view[pos:]])
            if n == 0:
                raise EOFError
            pos += n
        return view[start:]

    def send_bytes(self, data: bytes):
        size = len(data)
        header = _LENGTH.pack(size) if size <= 0x7FFFFFFF else (
            _LENGTH.pack(-1) + _LONG_LENGTH.pack(size))
        if size <= _JOINED_UP_TO:
            self._write(header + data)
        else:
            self._write(header)
            self._write(data)

    def send_many(self, messages: list):
        """Several messages, small ones joined into one write (the reader cannot tell)."""
        joined: list = []
        for data in messages:
            if len(data) > _JOINED_UP_TO:
                if joined:
                    self._write(b"".join(joined))
                    joined = []
                self.send_bytes(data)
            else:
                joined += (_LENGTH.pack(len(data)), data)
        if joined:
            self._write(b"".join(joined))

    def _write(self, data):
        n = os.write(self.fd, data)
        if n < len(data):
            view = memoryview(data)
            while n < len(view):
                n += os.write(self.fd, view[n:])

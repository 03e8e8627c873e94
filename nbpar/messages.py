"""The small frozen messages that cross between the Boss and its workers.

Bodies (items, results, functions) travel as nested pickled bytes, so a header always
decodes even when a body does not: a bad item or result is then named, never a hang.
"""

from __future__ import annotations

from dataclasses import dataclass

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

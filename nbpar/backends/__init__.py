"""Backends hide how a worker is started and reached.

Every backend gives the Boss `WorkerHandle`s: a channel to send messages to the worker and
receive its replies, something to wait on for its death (`sentinel`), and the fds of its
stdout/stderr. The Boss never asks which backend it has; what runs the worker is the
backend's own business, in the one field of the handle that names it (`mp_process`,
`thread` or `dask_slot`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..messages import WorkerSetup
    from ..reports import Report
    from .dask.slot import Slot

START_METHODS = ("fork", "forkserver", "spawn", "threading")


class Channel(Protocol):
    """The Boss's end of a worker's messages: sent and received whole, and how the bodies
    of batches and results are encoded for this kind of worker (pickled, or as they are)."""

    def fileno(self) -> int: ...
    def send(self, msg: Any) -> None: ...
    def recv(self) -> Any: ...
    def close(self) -> None: ...

    def encode(self, obj: Any) -> Any: ...

    def decode(self, data: Any) -> Any: ...


@dataclass(eq=False)
class WorkerHandle:
    worker_id: int
    pid: int | None
    channel: Channel
    sentinel: int | None = None  # an fd, readable when the worker is gone (None: none)
    outputs: dict[int, str] = field(default_factory=dict)  # fd -> "stdout" | "stderr"
    # what runs the worker, for its backend (a fork server's worker has only its pid):
    mp_process: BaseProcess | None = None  # a fork or spawn worker's Process
    thread: threading.Thread | None = None  # a threading worker
    dask_slot: Slot | None = None  # a slot running batches as Dask tasks
    encode_func: Callable[[Any], Any] | None = None  # how a function is pickled for it
    # (None: channel.encode)
    inherited: set[int] = field(default_factory=set)  # keys of the functions it was started
    # with
    lost: str | None = None  # set by the backend when it died of something else's death


class Backend(Protocol):
    """What the Boss and the pool call on a backend: every backend has all of it (mypy checks
    each one against it where `make_backend` returns it), the optional parts with neutral
    defaults, so neither asks which backend it has.

    Attributes
    ----------
    can_kill : bool
        Its workers can be killed and so are processes to measure (CPU, memory): a thread
        cannot, and is abandoned instead.
    n_workers : int
        How many workers it has (Dask: its cluster's threads when the pool gave no number).
    min_batch_time : float or None
        The shortest batch worth sending, in seconds (Dask: a task's cost); None: the
        adaptive chunker's own.
    """

    can_kill: bool
    n_workers: int
    min_batch_time: float | None

    def prepare(self, obj: Any) -> Any:
        """In the caller's thread: the shared objects made ready to send (pickling errors
        surface here)."""
        ...

    def apply(self, prepared: Any) -> None:
        """In the Boss's thread: use what `prepare` made for the workers started from now."""
        ...

    def use_hooks(self, hooks: tuple[Any, Any]) -> bool:
        """New worker_init and worker_exit for the next workers. True: they travel with the
        shared objects (the next `prepare` takes them, and the workers holding the old ones
        must be retired); False: they go in each WorkerSetup."""
        ...

    def extra_waitables(self) -> list[Any]:
        """What the Boss must watch besides the workers (a fork server's link)."""
        ...

    def on_extra_ready(self, obj: Any) -> bool:
        """One of those is ready; True: stop watching it."""
        ...

    def start(self, setup: WorkerSetup) -> WorkerHandle: ...

    def kill(self, handle: WorkerHandle) -> bool:
        """Kill a worker; True: count it gone now (no sentinel will say so)."""
        ...

    def exitcode(self, handle: WorkerHandle, timeout: float = ...) -> int | None: ...

    def release(self, handle: WorkerHandle) -> None:
        """After the worker is gone: free what was held for it."""
        ...

    def position(self, worker_id: int) -> int | None:
        """Which item of its batch the worker runs (for the reports)."""
        ...

    def annotate(self, report: Report) -> Report:
        """A report with what the backend knows of its workers (Dask: where each runs)."""
        ...

    def close(self) -> None: ...


def make_backend(start_method: str, n_workers: int | None, shared_objects: Any, *,
                 hooks: tuple[Any, Any] = (None, None), backend: str | None = None,
                 client: Any = None, owner: object = None) -> Backend:
    """The backend a pool's Boss drives (see `Backend`). Process backends take worker_init
    and worker_exit (`hooks`) with the shared objects; the others get them in each
    WorkerSetup. `owner` is what a worker thread finds as its `thread.current_owner()` (the
    pool, weakly)."""
    if backend == "dask":
        try:
            from .dask import DaskBackend
        except ImportError as exc:
            raise ImportError(f"backend='dask' needs dask.distributed: pip install "
                              f"'nbpar[dask]' ({exc})") from exc
        return DaskBackend(n_workers, shared_objects, client)
    assert n_workers is not None  # only Dask may count its own workers
    if start_method == "threading":
        from .thread import ThreadBackend
        return ThreadBackend(n_workers, shared_objects, owner)
    from .process import ProcessBackend
    return ProcessBackend(start_method, n_workers, shared_objects, hooks)

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
    from .dask import DaskBackend
    from .dask.slot import Slot
    from .process import ProcessBackend
    from .thread import ThreadBackend

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


def make_backend(start_method: str, n_workers: int | None, shared_objects: Any, *,
                 hooks: tuple[Any, Any] = (None, None), backend: str | None = None,
                 client: Any = None, owner: object = None
                 ) -> ProcessBackend | ThreadBackend | DaskBackend:
    """The backend a pool's Boss drives. A backend may say how many workers it has
    (`n_workers`, e.g. Dask's thread count when n_workers is None) and the shortest batch
    worth sending (`min_batch_time`). Process backends take worker_init and worker_exit
    (`hooks`) with the shared objects; the others get them in each WorkerSetup. `owner` is
    what a worker thread finds as its `thread.current_owner()` (the pool, weakly)."""
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

"""Workers as threads of the caller: the same worker loop, objects passed by reference.

A thread cannot be killed: STOP_RIGHTNOW and task timeouts abandon it instead (its late
result is dropped and a fresh thread takes its place), as concurrent.futures does.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from typing import Any

from .. import worker
from ..messages import WorkerSetup
from ..reports import Report
from . import WorkerHandle

_log = logging.getLogger(__name__)

_current = threading.local()  # in a worker thread: `owner`, what its backend was made for


class _Ends:
    """A pair of in-process channels; the Boss's end is waitable through a pipe byte."""

    def __init__(self) -> None:
        self.to_worker: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.to_boss: deque[Any] = deque()
        self.r, self.w = os.pipe()
        self.closed = False
        self.lock = threading.Lock()

    def post(self, msg: Any) -> None:  # worker -> Boss
        with self.lock:
            if self.closed:
                return
            self.to_boss.append(msg)
            os.write(self.w, b"\0")

    def end(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                os.close(self.w)


class BossEnd:
    def __init__(self, ends: _Ends) -> None:
        self.ends = ends

    def fileno(self) -> int:
        return self.ends.r

    def send(self, msg: Any) -> None:
        self.ends.to_worker.put(msg)

    def recv(self) -> Any:
        if not os.read(self.ends.r, 1):
            raise EOFError
        return self.ends.to_boss.popleft()

    def close(self) -> None:
        self.ends.end()
        self.ends.to_worker.put(None)
        os.close(self.ends.r)

    encode = decode = staticmethod(lambda obj, /: obj)


class WorkerEnd:
    def __init__(self, ends: _Ends) -> None:
        self.ends = ends

    def send(self, msg: Any) -> None:
        self.ends.post(msg)

    def recv(self) -> Any:
        msg = self.ends.to_worker.get()
        if msg is None:
            raise EOFError
        return msg

    encode = decode = staticmethod(lambda obj, /: obj)


def _serve(ends: _Ends, setup: WorkerSetup, shared: Any, board: list[int],
           owner: object) -> None:
    _current.owner = owner
    try:
        worker.run(WorkerEnd(ends), setup, shared, board)
    finally:
        ends.end()


def current_owner() -> object:
    """The `owner` given to the backend whose worker runs the calling thread, else None."""
    return getattr(_current, "owner", None)


class ThreadBackend:
    can_kill = False
    min_batch_time: float | None = None

    def __init__(self, n_workers: int, shared_objects: Any, owner: object = None) -> None:
        self.n_workers = n_workers
        self.shared = shared_objects
        self.board = [0] * n_workers
        self.owner = owner  # told to its worker threads (`current_owner`): a pool's weakref

    def prepare(self, obj: Any) -> Any:
        return obj

    def apply(self, prepared: Any) -> None:
        self.shared = prepared

    def use_hooks(self, hooks: tuple[Any, Any]) -> bool:
        return False  # threads get them as they are, in each WorkerSetup

    def extra_waitables(self) -> list[Any]:
        return []

    def on_extra_ready(self, obj: Any) -> bool:
        return True  # (it has none to watch)

    def annotate(self, report: Report) -> Report:
        return report

    def start(self, setup: WorkerSetup) -> WorkerHandle:
        ends = _Ends()
        thread = threading.Thread(target=_serve,
                                  args=(ends, setup, self.shared, self.board, self.owner),
                                  name=f"nbpar-worker-{setup.worker_id}", daemon=True)
        thread.start()
        return WorkerHandle(setup.worker_id, os.getpid(), BossEnd(ends), None, {},
                            thread=thread)

    def kill(self, handle: WorkerHandle) -> bool:
        """Abandon the thread: it ends after its current task. True: count it gone now."""
        channel = handle.channel
        assert isinstance(channel, BossEnd)
        channel.ends.end()
        channel.ends.to_worker.put(None)
        return True

    def exitcode(self, handle: WorkerHandle, timeout: float = 0) -> int:
        return 0

    def release(self, handle: WorkerHandle) -> None:
        channel = handle.channel
        assert isinstance(channel, BossEnd)
        try:
            os.close(channel.ends.r)
        except OSError:
            _log.debug("closing worker %s's pipe failed", handle.worker_id, exc_info=True)

    def position(self, worker_id: int) -> int:
        return self.board[worker_id]

    def close(self) -> None:
        pass

"""Worker processes under fork, forkserver and spawn: one class, three ways to launch.

Each worker gets a duplex pipe for messages, two pipes for its stdout and stderr, and the
slot of a progress board. What differs is only how the process comes to life: forked from the
caller, forked from nbpar's fork server (which holds the shared objects and hooks), or spawned
fresh with them packed as an argument. Under fork, the functions of the maps running when a
worker starts are inherited too (`WorkerSetup.funcs`); the other methods get them pickled.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import sys
from collections.abc import Iterable
from dataclasses import replace
from multiprocessing.connection import Connection, Pipe
from typing import TYPE_CHECKING, Any

from .. import inner_threads, worker
from ..bundle import Bundle, preloadable
from ..messages import PipeEnd, WorkerSetup, from_wire, to_wire
from ..reports import Report
from ..shared import ProgressBoard, warn_if_copied
from . import WorkerHandle

_log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .forkserver import ServerLink


class MessagePipe:
    """The Boss's end of a worker's duplex pipe (the Connection owns the fd; its reads and
    writes go through PipeEnd: one system call per message)."""

    def __init__(self, conn: Connection[Any, Any]) -> None:
        self.conn = conn
        self.end = PipeEnd(conn.fileno())
        self.has_message = self.end.has_message

    def fileno(self) -> int:
        return self.end.fd

    def send(self, msg: Any) -> None:
        self.end.send_bytes(to_wire(msg))

    def send_all(self, msgs: Iterable[Any]) -> None:
        self.end.send_many([to_wire(msg) for msg in msgs])

    def recv(self) -> Any:
        return from_wire(self.end.recv_bytes())

    def recv_all(self) -> list[Any]:
        """Every whole message one read brings (at least one), in order."""
        return [from_wire(data) for data in self.end.recv_all()]

    def close(self) -> None:
        self.conn.close()

    encode = staticmethod(worker.dumps)
    decode = staticmethod(pickle.loads)


class _InheritFd:
    """An fd given to a spawned child the way multiprocessing gives fds."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        from multiprocessing import reduction
        return (_detach, (reduction.DupFd(self.fd),))


def _detach(dupfd: Any) -> int:
    fd: int = dupfd.detach()
    return fd


_POOL_NUMBERS = itertools.count(1)  # pools of this process in order: their workers' titles


class ProcessBackend:
    can_kill = True
    min_batch_time: float | None = None

    def __init__(self, start_method: str, n_workers: int, shared_objects: Any,
                 hooks: tuple[Any, Any] = (None, None)) -> None:
        self.method = start_method
        self.n_workers = n_workers
        self.number = next(_POOL_NUMBERS)  # "nbpar worker 1 (pool 3)" in ps and top
        self.board = ProgressBoard(n_workers, named=start_method != "fork")
        self.link: ServerLink | None = None
        self.hooks = tuple(hooks)  # worker_init, worker_exit: they travel with the objects
        self.bundle: Bundle | None = None
        self.no_preload: set[str] = set()  # sent to a fork server that then died
        try:
            if start_method == "forkserver":
                from .forkserver import ServerLink
                self.link = ServerLink()
            self.apply(self.prepare(shared_objects))
        except BaseException:
            self.close()
            raise

    def prepare(self, obj: Any) -> Bundle:
        """In the caller's thread: the objects and hooks as one bundle, pickled once unless
        the workers fork from here (a pickling error surfaces at the call, named)."""
        objects = (obj, *self.hooks)
        if self.method == "fork":
            return Bundle.inherited(objects)
        bundle = Bundle.packed_from(objects)
        warn_if_copied(bundle.packed, self.method)
        return bundle

    def apply(self, bundle: Bundle) -> None:
        """Use new shared objects for the workers started from now on."""
        old, self.bundle = self.bundle, bundle
        if self.link is not None:
            self.link.share(bundle.packed)
        if old is not None:
            old.release()

    def use_hooks(self, hooks: tuple[Any, Any]) -> bool:
        """worker_init and worker_exit travel in the bundle: the next `prepare` takes them."""
        self.hooks = tuple(hooks)
        return True

    def annotate(self, report: Report) -> Report:
        return report

    def extra_waitables(self) -> list[Any]:
        return [self.link] if self.link is not None else []

    def on_extra_ready(self, obj: Any) -> bool:
        """News from the fork server; True when the link is dead (stop watching it)."""
        if obj is not self.link:
            return True  # a link replaced since
        assert self.link is not None  # obj is the link
        self.link.read_pending()
        dead: bool = self.link.dead
        return dead

    def _relink(self) -> None:
        """After the fork server's death: a new server (started on demand), the bundle sent
        to it again. Workers already forked are gone with the old one."""
        from .forkserver import ServerLink
        assert self.link is not None and self.bundle is not None  # forkserver, set up
        self.no_preload |= self.link.preloaded  # one of them may be what killed it
        self.link.close()
        self.link = ServerLink()
        self.link.share(self.bundle.packed)

    def start(self, setup: WorkerSetup) -> WorkerHandle:
        assert self.bundle is not None  # set up in __init__, released only by close()
        setup = replace(_with_progress(setup, self.board.handle), pool_number=self.number)
        inherited = set(setup.funcs or ()) if self.method == "fork" else set()
        setup_funcs = setup.funcs or {}
        if not inherited:
            setup = replace(setup, funcs=None)  # pickled for the others: sent when needed
        parent, child = Pipe(duplex=True)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        args: tuple[Any, ...]
        try:
            if self.method == "forkserver":
                assert self.link is not None  # made in __init__ for this method
                if self.link.dead:
                    self._relink()
                self._preload(setup_funcs)
                try:
                    pid, sentinel = self.link.spawn(setup, [child.fileno(), out_w, err_w])
                except (EOFError, OSError) as exc:
                    if not self.link.dead:
                        raise
                    from ..errors import WorkerDiedError
                    raise WorkerDiedError(
                        f"worker {setup.worker_id} could not start: "
                        f"{self.link.death()}", worker_id=setup.worker_id) from exc
                process = None  # (the server's child: known by its pid)
            else:
                # (typeshed's BaseContext, what get_context gives for a str, has no .Process)
                ctx: Any = multiprocessing.get_context(self.method)
                if self.method == "fork":
                    if setup.inner_threads is not None:
                        inner_threads.find_libraries()  # once: the workers inherit it
                    args = (child, out_w, err_w, setup, self.bundle.objects)
                else:
                    args = (child, _InheritFd(out_w), _InheritFd(err_w), setup,
                            self.bundle.packed)
                process = ctx.Process(target=worker.bootstrap, args=args,
                                      name=f"nbpar-worker-{setup.worker_id}", daemon=True)
                process.start()
                pid, sentinel = process.pid, process.sentinel
        finally:
            child.close()
            os.close(out_w)
            os.close(err_w)
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        return WorkerHandle(setup.worker_id, pid, MessagePipe(parent), sentinel,
                            {out_r: "stdout", err_r: "stderr"}, mp_process=process,
                            encode_func=self.bundle.encode_func, inherited=inherited)

    def _preload(self, funcs: dict[Any, Any]) -> None:
        """Have the fork server import the modules these functions name (pickling them here
        also fills the bundle's cache: the Boss sends the same bytes)."""
        assert self.link is not None and self.bundle is not None  # forkserver, set up
        modules: set[str] = set()
        for func in funcs.values():
            try:
                modules |= self.bundle.modules(func)
            except Exception:  # noqa: BLE001 - the Boss reports an unpicklable func
                _log.debug("no modules to preload for %r", func, exc_info=True)
                continue
        self.link.preload([m for m in preloadable(modules) if m not in self.no_preload])

    def kill(self, handle: WorkerHandle) -> bool:
        """SIGKILL the worker and its process group (what its tasks started); its sentinel
        will say when it is gone."""
        assert handle.pid is not None  # a process worker's handle is made with its pid
        kill_group(handle.pid)
        return False

    def exitcode(self, handle: WorkerHandle, timeout: float = 2.0) -> int | None:
        if self.method == "forkserver":
            assert self.link is not None and handle.pid is not None  # made with them
            code: int | None = self.link.exitcode(handle.pid, timeout)
            if code is None and self.link.dead:
                handle.lost = self.link.death()
            return code
        process = handle.mp_process
        assert process is not None  # fork and spawn workers have their Process
        process.join(timeout)
        return process.exitcode

    def release(self, handle: WorkerHandle) -> None:
        """After the worker is gone: free what the Boss held for it."""
        handle.channel.close()
        for fd in handle.outputs:
            try:
                os.close(fd)
            except OSError:
                _log.debug("closing worker %s's output fd %s failed", handle.worker_id, fd,
                           exc_info=True)
        if self.method == "forkserver":
            assert self.link is not None  # made in __init__ for this method
            assert handle.pid is not None and handle.sentinel is not None  # a server's worker
            self.link.forget(handle.pid, handle.sentinel)
        else:
            process = handle.mp_process
            assert process is not None  # fork and spawn workers have their Process
            process.join(5)  # the sentinel can fire a moment before the child is reapable
            try:
                process.close()
            except ValueError:  # still not gone after 5 s: left to multiprocessing's reaping
                _log.debug("worker %s not reaped after 5 s", handle.worker_id, exc_info=True)

    def position(self, worker_id: int) -> int:
        position: int = self.board[worker_id]
        return position

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.bundle is not None:
            self.bundle.release()
            self.bundle = None
        self.board.close()


def kill_group(pid: int) -> None:
    """SIGKILL a worker's process group (it leads one: worker.bootstrap), then the worker
    itself, in case it was killed before it could make its group. The group's id is the
    worker's pid, which Linux does not reuse while the worker or any of the group lives."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass  # gone already (the group with its leader, or the worker itself)
        except PermissionError:
            _log.debug("killing %s of worker %s was not allowed", kill.__name__, pid,
                       exc_info=True)


def _with_progress(setup: WorkerSetup, handle: Any) -> WorkerSetup:
    """The setup with the worker's progress slot and the caller's world as it is now: a
    worker forked from a server started long ago, or spawned, sees what a forked one sees."""
    from dataclasses import replace
    return replace(setup, progress=handle, sys_path=tuple(sys.path), cwd=_cwd(),
                   argv=tuple(sys.argv), environ=dict(os.environ),
                   authkey=bytes(multiprocessing.current_process().authkey))


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # the caller's directory was removed: the worker keeps its own
        return None

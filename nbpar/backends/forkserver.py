"""nbpar's fork server: a clean, single-threaded process that holds shared objects and forks
workers from itself.

Forking a Jupyter kernel (always multi-threaded) can deadlock the child; spawning a fresh
interpreter per worker costs time and a copy of every shared object per worker. The server is
started once per caller process (as `python -m nbpar.backends.forkserver FD`) and kept alive
between pools. Each pool opens its own link to it, sends its shared objects once, and asks for
workers; the server forks them, so they share those objects copy-on-write.

On a link (the messages are in forklink.py, each acted on by its type): `SetPath`, `Share` +
its fds, `Preload` [module names], `Spawn` + [conn, stdout, stderr] answered by `Spawned` +
[sentinel] (or `Unshared`, `ServerFailed`), and later `Exited` for each of its workers.

The server comes to hold what workers need before it forks them: unpickling a pool's shared
objects and hooks imports their modules in the server, and "preload" imports the modules a
pool's functions name (only modules the caller has imported; an import that fails is left to
the workers, which import on their own and report the error as they would anyway). So the
second and later pools of a session start with those modules loaded. The server exits, killing
its workers, when the caller goes away; workers die with the server (PDEATHSIG).

The server can die too (the OOM killer picks the largest process, and it holds the shared
objects). A link then says so (`dead`, `death`): its workers' deaths are named after the
server's, and the next `get_server()` starts a new one.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import recvfds, sendfds
from typing import TYPE_CHECKING, Any

from .. import inner_threads
from .forklink import (Exited, OpenLink, Preload, ServerFailed, SetPath, Share, Spawn, Spawned,
                       Unshared)

if TYPE_CHECKING:
    from multiprocessing.context import ForkProcess

    from ..shared import Packed

_log = logging.getLogger("nbpar.forkserver")


def _send_fds(conn: Connection, fds: list[int]) -> None:
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sendfds(sock, fds)


def _recv_fds(conn: Connection, n: int) -> list[int]:
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        return list(recvfds(sock, n))


# ----------------------------------------------------------------------------- caller side

class _Server:
    """The running server process and the main connection to it (one per caller process)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbpar.backends.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self.conn = Connection(ours.detach())
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def open_link(self) -> Connection:
        ours, theirs = socket.socketpair()
        with self.lock:
            self.conn.send(OpenLink())
            _send_fds(self.conn, [theirs.fileno()])
        theirs.close()
        return Connection(ours.detach())

    def stop(self) -> None:
        try:
            self.conn.close()
        except OSError:
            _log.debug("closing the fork server's connection failed", exc_info=True)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_server: _Server | None = None
_server_lock = threading.Lock()


def get_server() -> _Server:
    global _server
    with _server_lock:
        if _server is None or not _server.alive():
            if _server is not None:
                _server.stop()  # dead: close our end, reap it
            _server = _Server()
        return _server


def shutdown_server() -> None:
    """Stop the fork server (it is restarted on demand); called at exit."""
    global _server
    with _server_lock:
        if _server is not None:
            _server.stop()
            _server = None


def _forget_after_fork() -> None:
    global _server
    _server = None


atexit.register(shutdown_server)
os.register_at_fork(after_in_child=_forget_after_fork)


class ServerLink:
    """One pool's own connection to the fork server."""

    def __init__(self) -> None:
        self.server = get_server()
        self.conn = self.server.open_link()
        self.conn.send(SetPath(list(sys.path), os.getcwd()))
        self.exits: dict[int, int | None] = {}
        self.dead = False  # the server is gone: nothing more comes on this link
        self.preloaded: set[str] = set()  # module names sent to be imported

    def fileno(self) -> int:
        return self.conn.fileno()

    def share(self, packed: Packed | None) -> None:
        if packed is None:
            self.conn.send(Share(None, 0))
            return
        self.conn.send(Share(packed.data, len(packed.fds), packed.refs))
        if packed.fds:
            _send_fds(self.conn, packed.fds)

    def preload(self, modules: Iterable[str]) -> None:
        """Ask the server to import these modules (once each, before the next fork)."""
        new = [name for name in modules if name not in self.preloaded]
        if new:
            self.preloaded.update(new)
            try:
                self.conn.send(Preload(new))
            except OSError:
                _log.debug("the fork server's link is closed", exc_info=True)
                self.dead = True

    def spawn(self, setup: Any, fds: list[int]) -> tuple[int, int]:
        """Have the server fork a worker: its pid and sentinel fd."""
        try:
            self.conn.send(Spawn(pickle.dumps(setup, protocol=5)))
            _send_fds(self.conn, fds)
        except OSError:
            self.dead = True
            raise
        while True:
            try:
                reply = self.conn.recv()
            except (EOFError, OSError):
                self.dead = True
                raise
            match reply:
                case Spawned(pid=pid):
                    (sentinel,) = _recv_fds(self.conn, 1)
                    return pid, sentinel
                case Unshared(why=why):
                    from ..errors import SerializationError
                    raise SerializationError(
                        f"the shared objects, worker_init and worker_exit could not be "
                        f"unpickled in nbpar's fork server: {why}")
                case ServerFailed(why=why):
                    raise RuntimeError(f"nbpar's fork server failed: {why}")
                case _:
                    self._note(reply)

    def _note(self, reply: object) -> None:
        """A reply that answers no request: the end of one of this link's workers."""
        if type(reply) is Exited:
            self.exits[reply.pid] = reply.exitcode
        else:
            _log.debug("the fork server sent %r out of turn: dropped", reply)

    def read_pending(self) -> None:
        try:
            while not self.dead and self.conn.poll():
                self._note(self.conn.recv())
        except (EOFError, OSError):
            _log.debug("the fork server's link is closed", exc_info=True)
            self.dead = True

    def exitcode(self, pid: int, timeout: float) -> int | None:
        if pid not in self.exits and not self.dead and self.conn.poll(timeout):
            self.read_pending()
        return self.exits.get(pid)

    def death(self) -> str:
        """How the server ended, for the errors of the workers that died with it."""
        code = self.server.proc.poll()
        if code is None:
            how = "closed its link"
        elif code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name}({code})"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        return f"nbpar's fork server {how}, and its workers with it"

    def forget(self, pid: int, sentinel: int) -> None:
        self.exits.pop(pid, None)
        try:
            os.close(sentinel)
        except OSError:
            _log.debug("closing worker %s's sentinel failed", pid, exc_info=True)

    def close(self) -> None:
        self.conn.close()


# ----------------------------------------------------------------------------- server side

class _Link:
    """A pool's link, as the server keeps it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.shared: Any = None
        self.unshared: str | None = None  # why the last shared objects could not be unpickled
        self.sys_path = list(sys.path)
        self.procs: dict[int, ForkProcess] = {}  # sentinel -> the worker's Process


class _ForkServer:
    """The server's side: its main connection, its links, and their workers' sentinels.
    What a link sends is acted on by its type (`_ON_LINK`)."""

    def __init__(self, main: Connection) -> None:
        import multiprocessing

        from .. import worker
        from ..bundle import open_bundle
        from ..shared import Packed

        self.main = main
        self.ctx = multiprocessing.get_context("fork")
        self.links: dict[Connection, _Link] = {}
        self.owner: dict[int, _Link] = {}  # sentinel -> link
        self.bootstrap = worker.bootstrap
        self.open_bundle = open_bundle
        self.packed = Packed

    def drop(self, link: _Link) -> None:
        """A link closed (or the caller went): kill its workers, forget it."""
        from .process import kill_group
        for proc in link.procs.values():
            if proc.pid is not None:  # (always: started)
                kill_group(proc.pid)  # the worker and what its tasks started
        for sentinel, proc in list(link.procs.items()):
            proc.join()
            self.owner.pop(sentinel, None)
        link.conn.close()
        self.links.pop(link.conn, None)

    def serve(self) -> None:
        main, links, owner = self.main, self.links, self.owner
        while True:
            for conn in wait([main, *links, *owner]):
                if conn is main:
                    try:
                        main.recv()  # an OpenLink
                    except (EOFError, OSError):
                        for link in list(links.values()):
                            self.drop(link)
                        return
                    (link_fd,) = _recv_fds(main, 1)
                    link = _Link(Connection(link_fd))
                    links[link.conn] = link
                elif conn in links:
                    link = links[conn]
                    try:
                        msg = conn.recv()
                    except (EOFError, OSError):
                        self.drop(link)
                        continue
                    try:
                        _ON_LINK[type(msg)](self, link, msg)
                    except Exception as exc:  # noqa: BLE001 - tell the caller, keep serving
                        conn.send(ServerFailed(f"{type(exc).__name__}: {exc}"))
                elif conn in owner:  # (a link dropped earlier in this round took its sentinels)
                    link = owner.pop(conn)
                    proc = link.procs.pop(conn)
                    proc.join()
                    assert proc.pid is not None  # (started)
                    try:
                        link.conn.send(Exited(proc.pid, proc.exitcode))
                    except OSError:  # the link is closed: its pool is gone, nobody to tell
                        _log.debug("worker %s ended after its link", proc.pid, exc_info=True)

    # -- what a link sends, by type
    def set_path(self, link: _Link, msg: SetPath) -> None:
        link.sys_path = msg.sys_path
        sys.path[:] = msg.sys_path
        try:
            os.chdir(msg.cwd)
        except OSError:  # removed since: the server keeps its directory, workers get theirs
            _log.debug("the caller's directory %s is gone", msg.cwd, exc_info=True)

    def preload(self, link: _Link, msg: Preload) -> None:
        sys.path[:] = link.sys_path
        for name in msg.modules:
            _import_quietly(name)

    def share(self, link: _Link, msg: Share) -> None:
        fds = _recv_fds(link.conn, msg.nfds) if msg.nfds else []
        sys.path[:] = link.sys_path
        link.shared, link.unshared = None, None
        try:
            if msg.data is not None:
                link.shared = self.open_bundle(self.packed(msg.data, fds, refs=msg.refs))
        except Exception as exc:  # noqa: BLE001 - said at the next spawn, which it forbids
            link.unshared = f"{type(exc).__name__}: {exc}"

    def spawn(self, link: _Link, msg: Spawn) -> None:
        conn_fd, out_fd, err_fd = _recv_fds(link.conn, 3)
        if link.unshared is not None:
            for fd in (conn_fd, out_fd, err_fd):
                os.close(fd)
            link.conn.send(Unshared(link.unshared))
            return
        setup = pickle.loads(msg.setup)
        inner_threads.set_for_workers(setup.inner_threads)  # the worker inherits the count
        inherited = [self.main.fileno(), *(c.fileno() for c in self.links), *self.owner]
        conn = Connection(conn_fd)
        proc = self.ctx.Process(target=self.bootstrap,
                                args=(conn, out_fd, err_fd, setup, link.shared, inherited),
                                daemon=False)
        proc.start()
        conn.close()
        os.close(out_fd)
        os.close(err_fd)
        link.procs[proc.sentinel] = proc
        self.owner[proc.sentinel] = link
        assert proc.pid is not None  # (started)
        link.conn.send(Spawned(proc.pid))
        _send_fds(link.conn, [proc.sentinel])


_ON_LINK: dict[type, Callable[[_ForkServer, _Link, Any], None]] = {
    SetPath: _ForkServer.set_path,
    Preload: _ForkServer.preload,
    Share: _ForkServer.share,
    Spawn: _ForkServer.spawn,
}


def serve(fd: int) -> None:
    import cloudpickle  # noqa: F401 - loaded once here, so forked workers start warm

    from ..titles import SERVER_TITLES, set_title

    set_title(*SERVER_TITLES)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _ForkServer(Connection(fd)).serve()


def _import_quietly(name: str) -> None:
    """Import a module in the server; a failure leaves it to the workers to import it (and
    report what goes wrong) as they would without the server's help."""
    if name in sys.modules:
        return
    import importlib
    try:
        importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - SystemExit included: the server must go on
        sys.modules.pop(name, None)


if __name__ == "__main__":
    serve(int(sys.argv[1]))

"""nbpar's fork server: a clean, single-threaded process that holds shared objects and forks
workers from itself.

Forking a Jupyter kernel (always multi-threaded) can deadlock the child; spawning a fresh
interpreter per worker costs time and a copy of every shared object per worker. The server is
started once per caller process (as `python -m nbpar.backends.forkserver FD`) and kept alive
between pools. Each pool opens its own link to it, sends its shared objects once, and asks for
workers; the server forks them, so they share those objects copy-on-write.

On a link: ("share", data, nfds)+fds, ("preload", [module names]), ("spawn", setup)+[conn,
stdout, stderr] answered by ("spawned", pid)+[sentinel], and later ("exited", pid, exitcode).

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
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection, Pipe, wait
from multiprocessing.reduction import recvfds, sendfds


def _send_fds(conn, fds):
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sendfds(sock, fds)


def _recv_fds(conn, n):
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:
        return recvfds(sock, n)


# ----------------------------------------------------------------------------- caller side

class _Server:
    """The running server process and the main connection to it (one per caller process)."""

    def __init__(self):
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

    def alive(self):
        return self.proc.poll() is None

    def open_link(self):
        ours, theirs = socket.socketpair()
        with self.lock:
            self.conn.send(("link",))
            _send_fds(self.conn, [theirs.fileno()])
        theirs.close()
        return Connection(ours.detach())

    def stop(self):
        try:
            self.conn.close()
        except OSError:
            pass
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


def shutdown_server():
    """Stop the fork server (it is restarted on demand); called at exit."""
    global _server
    with _server_lock:
        if _server is not None:
            _server.stop()
            _server = None


def _forget_after_fork():
    global _server
    _server = None


atexit.register(shutdown_server)
os.register_at_fork(after_in_child=_forget_after_fork)


class ServerLink:
    """One pool's own connection to the fork server."""

    def __init__(self):
        self.server = get_server()
        self.conn = self.server.open_link()
        self.conn.send(("path", list(sys.path), os.getcwd()))
        self.exits: dict[int, int | None] = {}
        self.dead = False  # the server is gone: nothing more comes on this link
        self.preloaded: set[str] = set()  # module names sent to be imported

    def fileno(self):
        return self.conn.fileno()

    def share(self, packed):
        if packed is None:
            self.conn.send(("share", None, 0))
            return
        self.conn.send(("share", packed.data, len(packed.fds), packed.refs))
        if packed.fds:
            _send_fds(self.conn, packed.fds)

    def preload(self, modules):
        """Ask the server to import these modules (once each, before the next fork)."""
        new = [name for name in modules if name not in self.preloaded]
        if new:
            self.preloaded.update(new)
            try:
                self.conn.send(("preload", new))
            except OSError:
                self.dead = True

    def spawn(self, setup, fds):
        try:
            self.conn.send(("spawn", pickle.dumps(setup, protocol=5)))
            _send_fds(self.conn, fds)
        except OSError:
            self.dead = True
            raise
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.dead = True
                raise
            if msg[0] == "spawned":
                (sentinel,) = _recv_fds(self.conn, 1)
                return msg[1], sentinel
            if msg[0] == "unshared":
                from ..errors import SerializationError
                raise SerializationError(
                    f"the shared objects, worker_init and worker_exit could not be unpickled "
                    f"in nbpar's fork server: {msg[1]}")
            if msg[0] == "error":
                raise RuntimeError(f"nbpar's fork server failed: {msg[1]}")
            self._note(msg)

    def _note(self, msg):
        if msg[0] == "exited":
            self.exits[msg[1]] = msg[2]

    def read_pending(self):
        try:
            while not self.dead and self.conn.poll():
                self._note(self.conn.recv())
        except (EOFError, OSError):
            self.dead = True

    def exitcode(self, pid, timeout):
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

    def forget(self, pid, sentinel):
        self.exits.pop(pid, None)
        try:
            os.close(sentinel)
        except OSError:
            pass

    def close(self):
        self.conn.close()


# ----------------------------------------------------------------------------- server side

class _Link:
    def __init__(self, conn):
        self.conn = conn
        self.shared = None
        self.unshared = None  # why the last shared objects could not be unpickled here
        self.sys_path = list(sys.path)
        self.procs = {}  # sentinel -> Process


def serve(fd: int) -> None:
    import multiprocessing

    import cloudpickle  # noqa: F401 - loaded once here, so forked workers start warm

    from .. import worker
    from ..bundle import open_bundle
    from ..shared import Packed
    from ..titles import SERVER_TITLES, set_title
    from .process import kill_group

    set_title(*SERVER_TITLES)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = multiprocessing.get_context("fork")
    main = Connection(fd)
    links: dict = {}
    owner: dict = {}  # sentinel -> link

    def drop(link):
        for proc in link.procs.values():
            kill_group(proc.pid)  # the worker and what its tasks started
        for sentinel, proc in list(link.procs.items()):
            proc.join()
            owner.pop(sentinel, None)
        link.conn.close()
        links.pop(link.conn, None)

    while True:
        for conn in wait([main, *links, *owner]):
            if conn is main:
                try:
                    main.recv()
                except (EOFError, OSError):
                    for link in list(links.values()):
                        drop(link)
                    return
                (link_fd,) = _recv_fds(main, 1)
                link = _Link(Connection(link_fd))
                links[link.conn] = link
            elif conn in links:
                link = links[conn]
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    drop(link)
                    continue
                try:
                    _on_link_message(link, msg, ctx, worker, Packed, open_bundle, main, links,
                                     owner)
                except Exception as exc:  # noqa: BLE001 - tell the caller, keep serving
                    conn.send(("error", f"{type(exc).__name__}: {exc}"))
            elif conn in owner:  # (a link dropped earlier in this round took its sentinels)
                link = owner.pop(conn)
                proc = link.procs.pop(conn)
                proc.join()
                try:
                    link.conn.send(("exited", proc.pid, proc.exitcode))
                except OSError:
                    pass


def _on_link_message(link, msg, ctx, worker, Packed, open_bundle, main, links, owner):
    kind = msg[0]
    if kind == "path":
        link.sys_path = msg[1]
        sys.path[:] = msg[1]
        try:
            os.chdir(msg[2])
        except OSError:
            pass
    elif kind == "preload":
        sys.path[:] = link.sys_path
        for name in msg[1]:
            _import_quietly(name)
    elif kind == "share":
        fds = _recv_fds(link.conn, msg[2]) if msg[2] else []
        sys.path[:] = link.sys_path
        link.shared, link.unshared = None, None
        try:
            if msg[1] is not None:
                link.shared = open_bundle(Packed(msg[1], fds, refs=msg[3]))
        except Exception as exc:  # noqa: BLE001 - said at the next spawn, which it forbids
            link.unshared = f"{type(exc).__name__}: {exc}"
    elif kind == "spawn":
        conn_fd, out_fd, err_fd = _recv_fds(link.conn, 3)
        if link.unshared is not None:
            for fd in (conn_fd, out_fd, err_fd):
                os.close(fd)
            link.conn.send(("unshared", link.unshared))
            return
        setup = pickle.loads(msg[1])
        inherited = [main.fileno(), *(c.fileno() for c in links), *owner]
        conn = Connection(conn_fd)
        proc = ctx.Process(target=worker.bootstrap,
                           args=(conn, out_fd, err_fd, setup, link.shared, inherited),
                           daemon=False)
        proc.start()
        conn.close()
        os.close(out_fd)
        os.close(err_fd)
        link.procs[proc.sentinel] = proc
        owner[proc.sentinel] = link
        link.conn.send(("spawned", proc.pid))
        _send_fds(link.conn, [proc.sentinel])


def _import_quietly(name):
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

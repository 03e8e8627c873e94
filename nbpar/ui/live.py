"""Widget clicks that act while a cell blocks the kernel's main thread.

A plain `pool.map(...)` in a cell blocks the kernel's main thread, and the main thread is
where a Jupyter kernel handles widget messages: a click made meanwhile used to wait until the
cell ended (and then halted the next map). ipykernel >= 7 runs *subshells*, each a thread with
its own message loop, and since 7.4 it asks a comm which subshell should handle the frontend's
messages to it (`Comm._reply_subshell_for`). nbpar opens one subshell in the kernel on first
need and routes its widgets' button comms there: a click then runs in that thread at once,
whatever the main thread is doing. The handlers only send a signal on the pool's control pipe,
which is thread-safe.

On a kernel without subshells (ipykernel < 7.4, another kernel, a terminal) nothing is routed:
the buttons act while an awaited or background map runs, and a plain blocking call's clicks
wait for the cell to end as before (the widget says so, and drops a click made for a map that
has ended).
"""

from __future__ import annotations

import threading

from . import kernel as _kernel

_lock = threading.Lock()
_subshell: dict = {}  # kernel id -> the subshell id nbpar opened there (None: cannot)
CREATE_TIMEOUT = 5.0  # s for the shell channel thread to open the subshell


def _running_kernel():
    ip = _kernel.shell()
    return getattr(ip, "kernel", None) if ip is not None else None


def subshell_id() -> str | None:
    """nbpar's subshell in the running kernel (opened on first call), or None if the kernel
    has no subshells or cannot route comm messages to one."""
    k = _running_kernel()
    if k is None or not getattr(k, "_supports_kernel_subshells", False):
        return None
    from ipykernel.comm import Comm
    if not hasattr(Comm, "_reply_subshell_for"):
        return None  # ipykernel 7.0-7.3: comm messages always go to the main thread
    with _lock:
        if id(k) not in _subshell:
            _subshell[id(k)] = _open_subshell(k)
        return _subshell[id(k)]


def _open_subshell(k) -> str | None:
    """Ask the kernel's shell channel thread (the only one allowed to) for a new subshell."""
    channel = getattr(k, "shell_channel_thread", None)
    if channel is None:
        return None
    manager = channel.manager
    opened: dict = {}
    done = threading.Event()

    def create():
        try:
            opened["id"] = manager._create_subshell()
        except Exception as exc:  # noqa: BLE001 - no live buttons, said by the widget
            opened["error"] = exc
        finally:
            done.set()

    channel.io_loop.add_callback(create)
    if not done.wait(CREATE_TIMEOUT):
        return None
    return opened.get("id")


def route(widget) -> bool:
    """Have the frontend's messages to `widget` handled in nbpar's subshell; True if they
    will be (so its handlers run even while the main thread is blocked)."""
    sid = subshell_id()
    comm = getattr(widget, "comm", None)
    if sid is None or comm is None:
        return False
    comm._reply_subshell_for = lambda data, default, _sid=sid: _sid
    return True

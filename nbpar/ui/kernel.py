"""Talking to the running IPython kernel: where are we, how a map's error shows there, and
SIGINT while a map is awaited.

`%parallel_map` and a plain `pool.map` block the cell like any call; the pool widget's
buttons still act meanwhile, handled in nbpar's kernel subshell (live.py). So the magic works
wherever a call does: under `%time`, `%%time` and `%timeit`, in an assignment, a `with` block,
a loop or a function.

A map's error in a cell shows what concerns the user: the cell's line, and (as its cause)
the worker's frames in the user's code. `show_user_frames` has IPython leave out the frames
of nbpar and of IPython's magic machinery between the two, once; `%tb` shows them all.

The toolbar's interrupt (SIGINT) reaches a blocking map as KeyboardInterrupt in the main
thread: the pool stops it at once (STOP_RIGHTNOW) and raises a KeyboardInterrupt whose one
line says how to continue (the magic's is `MapInterrupted`, naming `--continue`). It does
not reach an awaiting cell in time on ipykernel 7.4 (only once the awaited thing ends by
itself), so while `await pool.map_async(...)` runs in the kernel's
main thread, `interrupt_stops` holds SIGINT and turns it into STOP_RIGHTNOW itself.

Nothing here imports ipywidgets; IPython only when asked about a running shell.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import types
from contextlib import contextmanager

from ..errors import ended_early

__all__ = ["MapInterrupted", "in_notebook", "interrupt_stops", "pool_mimebundle", "shell",
           "show_user_frames"]

_NBPAR_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def shell():
    """The running IPython shell, or None (IPython is not imported here if it is not yet)."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython
    return get_ipython()


def in_notebook() -> bool:
    """True in a Jupyter kernel (widgets can be shown), False in a terminal or plain Python."""
    ip = shell()
    return ip is not None and getattr(ip, "kernel", None) is not None


# ---------------------------------------------------------------- a map's error in a cell

def show_user_frames(exc: BaseException) -> BaseException:
    """Have IPython show `exc`, the first time, with the user's frames only: the cell's line
    (and the user's functions that led to it), not nbpar's frames nor IPython's magic
    machinery. Its cause, the worker's traceback, shows as it is. An exception that renders
    itself already is left alone; outside IPython nothing changes. Returns `exc`."""
    if not hasattr(exc, "_render_traceback_"):
        try:
            exc._render_traceback_ = _UserFrames(exc)  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # an exception that takes no attributes
            pass
    return exc


class _UserFrames:
    """An exception's one-shot `_render_traceback_`: IPython's own rendering of it, over
    the user's frames."""

    def __init__(self, exc):
        self.exc = exc

    def __call__(self):
        exc = self.exc
        exc.__dict__.pop("_render_traceback_", None)  # once: `%tb` shows every frame
        ip = shell()
        tb = _user_frames(exc.__traceback__)
        return ip.InteractiveTB.structured_traceback(type(exc), exc, tb, tb_offset=0)


def _internal(filename: str) -> bool:
    """A frame of nbpar, of IPython, or of a magic's decorator."""
    ipython = sys.modules.get("IPython")
    where = getattr(ipython, "__file__", None)
    ipython_dir = os.path.dirname(os.path.abspath(where)) + os.sep if where else None
    return (filename.startswith(_NBPAR_DIR) or filename.startswith("<decorator-gen-")
            or (ipython_dir is not None and filename.startswith(ipython_dir)))


def _user_frames(tb):
    """`tb` without nbpar's and IPython's frames (IPython's run of the cell included)."""
    kept = []
    while tb is not None:
        if not _internal(tb.tb_frame.f_code.co_filename):
            kept.append((tb.tb_frame, tb.tb_lasti, tb.tb_lineno))
        tb = tb.tb_next
    rebuilt = None
    for frame, lasti, lineno in reversed(kept):
        rebuilt = types.TracebackType(rebuilt, frame, lasti, lineno)
    return rebuilt


# ---------------------------------------------------------------- the interrupt

class MapInterrupted(KeyboardInterrupt):
    """Jupyter's interrupt (or Ctrl-C) stopped a map in a cell: one line, with the stopped
    `.report`."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report

    def _render_traceback_(self):  # IPython shows this line instead of frames
        return [f"KeyboardInterrupt: {self}"]


class _Guard:
    interrupted = False

    def translate(self, error):
        """The error a map that ended with `error` raises: an interrupted one says so."""
        from ..errors import StoppedError
        if not (self.interrupted and isinstance(error, StoppedError)):
            return error
        return MapInterrupted(ended_early(error.report, "interrupted",
                                          "pool.map(func, report=pool.report())"),
                              error.report)


@contextmanager
def interrupt_stops(pool):
    """While an awaited map runs in a kernel's main thread, SIGINT sends STOP_RIGHTNOW."""
    guard = _Guard()
    if not in_notebook() or threading.current_thread() is not threading.main_thread():
        yield guard
        return

    def on_interrupt(signum, frame):
        guard.interrupted = True
        pool.stop(now=True)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield guard
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------- rich display of a pool

def pool_mimebundle(pool, include=None, exclude=None) -> dict:
    """A pool's rich display: its live widget in a notebook, its repr elsewhere."""
    if not in_notebook():
        return {"text/plain": repr(pool)}
    from .widget import PoolWidget
    view = PoolWidget(pool)
    ip = shell()
    if ip is not None:
        view.follow_cells(ip)
    return view._repr_mimebundle_(include=include, exclude=exclude)

"""Talking to the running IPython kernel: where are we, and how does a cell wait live.

A widget click reaches Python while a cell runs only if the kernel's event loop is free: on
ipykernel >= 7.4 that is the case while an async cell awaits, never while a cell blocks the main
thread. So `%parallel_map` at the top level of a cell is rewritten, after IPython's own rewrite
of the magic, into an awaited call:

    get_ipython().run_line_magic('parallel_map', 'f xs')
      -> (await __import__('nbpar.ui.magics').ui.magics.parallel_map_awaited('f xs'))

The cell stays busy ([*]) and shows the result list like any call, "Run All" keeps its order,
and the pool widget's buttons act during the map. Only top-level occurrences found with `ast`
are rewritten (never inside a `def`, a class, a lambda or a comprehension, never in a string
literal); `%time %parallel_map ...`, `%autoawait off`, another loop runner or an older kernel
keep the plain blocking call, whose buttons act only once the cell has ended.

The toolbar's interrupt (SIGINT) does not reach an awaiting cell in time on ipykernel 7.4: it
cancels the cell only once the awaited thing ends by itself. So while a map is awaited in the
kernel's main thread, `interrupt_stops` holds SIGINT and turns it into STOP_RIGHTNOW; the map
then ends at once and `MapInterrupted` says, in one line, how to continue it.

Nothing here imports ipywidgets; IPython only when asked about a running shell.
"""

from __future__ import annotations

import ast
import signal
import sys
import threading
from contextlib import contextmanager

MAGIC = "parallel_map"
_MARK = f"run_line_magic('{MAGIC}'"
_AWAITED = "(await __import__('nbpar.ui.magics').ui.magics.parallel_map_awaited({args}))"
LIVE_KERNEL = (7, 4)  # ipykernel: widget messages handled while an async cell awaits


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


def kernel_version() -> tuple:
    try:
        from importlib.metadata import version
        return tuple(int(p) for p in version("ipykernel").split(".")[:2])
    except Exception:  # noqa: BLE001 - unknown or odd version strings: assume old
        return (0, 0)


def can_await_live(ip=None) -> bool:
    """Whether an awaited top-level cell keeps widget clicks flowing in this kernel now."""
    ip = ip or shell()
    if ip is None or getattr(ip, "kernel", None) is None or not ip.autoawait:
        return False
    from IPython.core.async_helpers import _asyncio_runner
    return ip.loop_runner is _asyncio_runner and kernel_version() >= LIVE_KERNEL


# ---------------------------------------------------------------- the input transformer

def await_parallel_map(lines: list[str]) -> list[str]:
    """IPython post-transformer: top-level `%parallel_map` calls become awaited calls."""
    source = "".join(lines)
    if _MARK not in source or not can_await_live():
        return lines
    rewritten = rewrite(source)
    return lines if rewritten is None else rewritten.splitlines(keepends=True)


def rewrite(source: str) -> str | None:
    """`source` with each top-level magic call awaited, or None when there is none."""
    try:
        tree = compile(source, "<cell>", "exec",
                       ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return None  # IPython reports it on its own
    calls = sorted(_top_level_calls(tree), key=lambda c: (c.lineno, c.col_offset),
                   reverse=True)
    if not calls:
        return None
    lines = [line.encode() for line in source.splitlines(keepends=True)]
    for call in calls:  # from the end, so earlier offsets stay valid
        text = _AWAITED.format(args=repr(call.args[1].value)).encode()
        first, last = call.lineno - 1, call.end_lineno - 1  # offsets are in UTF-8 bytes
        head, tail = lines[first][:call.col_offset], lines[last][call.end_col_offset:]
        lines[first:last + 1] = [head + text + tail]
    return b"".join(lines).decode()


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _top_level_calls(node):
    """`get_ipython().run_line_magic('parallel_map', '<text>')` calls outside any scope."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _SCOPES):
            continue
        if _is_magic_call(child):
            yield child
        else:
            yield from _top_level_calls(child)


def _is_magic_call(node) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_line_magic" and len(node.args) == 2 and not node.keywords):
        return False
    owner, (name, text) = node.func.value, node.args
    return (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
            and owner.func.id == "get_ipython"
            and isinstance(name, ast.Constant) and name.value == MAGIC
            and isinstance(text, ast.Constant) and isinstance(text.value, str))


def install(ip) -> None:
    """Register the transformer once (a second `%load_ext` must not add it twice)."""
    if not any(getattr(t, "__qualname__", None) == await_parallel_map.__qualname__
               and getattr(t, "__module__", None) == __name__
               for t in ip.input_transformers_post):
        ip.input_transformers_post.append(await_parallel_map)


def uninstall(ip) -> None:
    ip.input_transformers_post[:] = [
        t for t in ip.input_transformers_post
        if not (getattr(t, "__qualname__", None) == await_parallel_map.__qualname__
                and getattr(t, "__module__", None) == __name__)]


# ---------------------------------------------------------------- the interrupt

class MapInterrupted(KeyboardInterrupt):
    """Jupyter's interrupt (or Ctrl-C) stopped a map: one line, with the stopped `.report`."""

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
        r = error.report
        message = (f"the map was interrupted after {r.done} of {r.total} items "
                   f"({len(r.pending)} pending); continue it with "
                   f"pool.map(func, report=pool.report())")
        return MapInterrupted(message, r)


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

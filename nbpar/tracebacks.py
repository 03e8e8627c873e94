"""Worker tracebacks that read like local ones.

A worker sends, beside the formatted text of an exception, the frames of its exception chain
as plain data, and the caller formats them itself. Functions that travel by value (defined in
a notebook cell, a script's `__main__`, a closure) run in the worker as rebuilt code objects:
their file name says nothing useful there (cloudpickle 3.1.3 and later write
"<dynamic-code>"), and a worker could not read a cell's source anyway. The caller has both.
Every code object nbpar pickles by value is remembered by its qualified name, first line and
bytecode, which gives back its file; `linecache`, which IPython fills with every cell, gives
the source line; and IPython names a cell's file "Cell In[N]", as in its own tracebacks.
"""

from __future__ import annotations

import functools
import io
import linecache
import os
import sys
import traceback
import types
import zlib
from dataclasses import dataclass

_REPEATS_SHOWN = 3  # as the traceback module: identical frames shown before "repeated N times"
_REMEMBERED = 4096  # code objects remembered; the oldest are forgotten first
_origins: dict[tuple[str, int, int], str] = {}  # (qualname, first line, bytecode crc) -> file
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a worker's traceback, as plain data."""

    filename: str
    lineno: int | None
    name: str
    qualname: str
    firstlineno: int
    code_crc: int
    line: str  # the source line as the worker read it, "" when it could not


def _code_key(code: types.CodeType) -> tuple[str, int, int]:
    return code.co_qualname, code.co_firstlineno, zlib.crc32(code.co_code)


def remember(code: types.CodeType) -> None:
    """Note where a code object that is being pickled by value was defined."""
    key = _code_key(code)
    _origins.pop(key, None)  # newest last: a redefinition replaces the older entry
    _origins[key] = code.co_filename
    if len(_origins) > _REMEMBERED:
        del _origins[next(iter(_origins))]


@functools.cache
def pickler_class():
    """cloudpickle's Pickler, subclassed to remember where each code object it sends by value
    was defined (for the caller's tracebacks); other by-value picklers subclass it in turn."""
    import cloudpickle

    class CodeRememberingPickler(cloudpickle.Pickler):
        """cloudpickle's pickler, remembering each code object it sends by value."""

        def reducer_override(self, obj):
            if type(obj) is types.CodeType:
                remember(obj)
            return super().reducer_override(obj)

    return CodeRememberingPickler


def by_value_pickler(file, protocol=5, **kwargs):
    """A cloudpickle pickler that remembers where the code it sends by value came from."""
    return pickler_class()(file, protocol=protocol, **kwargs)


def dumps_by_value(obj) -> bytes:
    """`cloudpickle.dumps`, remembering the code objects' origins."""
    buffer = io.BytesIO()
    by_value_pickler(buffer).dump(obj)
    return buffer.getvalue()


# -- in the worker ------------------------------------------------------------------------

_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _chain(exc: BaseException | None) -> list[tuple[BaseException, str]]:
    """The exceptions of `exc`'s chain, oldest first, each with the line that follows it."""
    chain, seen = [], set()
    header = ""
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append((exc, header))
        if exc.__cause__ is not None:
            exc, header = exc.__cause__, _CAUSE
        elif exc.__context__ is not None and not exc.__suppress_context__:
            exc, header = exc.__context__, _CONTEXT
        else:
            exc = None
    return chain[::-1]  # printed oldest first, each followed by the line linking it onwards


def _frames(tb) -> list:
    parts: list = []
    last, repeats = None, 0
    for frame, lineno in traceback.walk_tb(tb):
        code = frame.f_code
        key = (code.co_filename, lineno, code.co_name)
        repeats = repeats + 1 if key == last else 1
        last = key
        if repeats > _REPEATS_SHOWN:
            parts[-1:] = [parts[-1] + 1] if isinstance(parts[-1], int) else [parts[-1], 1]
            continue
        line = linecache.getline(code.co_filename, lineno, frame.f_globals) if lineno else ""
        parts.append(Frame(code.co_filename, lineno, code.co_name, code.co_qualname,
                           code.co_firstlineno, zlib.crc32(code.co_code), line.strip()))
    return [f"  [Previous line repeated {p} more time{'s' if p > 1 else ''}]\n"
            if isinstance(p, int) else p for p in parts]


def capture_frames(exc: BaseException) -> tuple | None:
    """`exc`'s chain as text and `Frame`s in the order a traceback prints them; None for an
    exception group (its nested layout is left to the worker's own text)."""
    parts: list = []
    for link, header in _chain(exc):
        if isinstance(link, BaseExceptionGroup):
            return None
        if link.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(_frames(link.__traceback__))
        parts.append("".join(traceback.format_exception_only(type(link), link)))
        if header:
            parts.append(header)
    return tuple(parts)


# -- in the caller ------------------------------------------------------------------------

def _origin(frame: Frame) -> str:
    """The file a frame's code was defined in, as the caller knows it."""
    if frame.filename.startswith("<") or not linecache.getline(frame.filename, frame.lineno or 1):
        return _origins.get((frame.qualname, frame.firstlineno, frame.code_crc), frame.filename)
    return frame.filename


def _cell_label(filename: str) -> str | None:
    """"Cell In[N]" for the file of an IPython cell, when IPython runs this process."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    label = getattr(getattr(shell, "compile", None), "format_code_name", lambda name: None)
    named = label(filename)
    return f"{named[0]} {named[1]}" if named else None


def _is_nbpar(part) -> bool:
    return isinstance(part, Frame) and part.filename.startswith(_PACKAGE_DIR)


def _leads_in(parts: tuple, k: int) -> bool:
    """Whether frame k is one of nbpar's frames above the first of the user's, in its
    traceback."""
    first = k
    while first > 0 and isinstance(parts[first - 1], Frame):
        first -= 1
    if not all(_is_nbpar(p) for p in parts[first:k + 1]):
        return False
    rest = k + 1
    while rest < len(parts) and _is_nbpar(parts[rest]):
        rest += 1
    return rest < len(parts) and isinstance(parts[rest], Frame)


def render(parts: tuple) -> str:
    """A worker's traceback as the caller would print it for a local exception: each
    frame's file (or notebook cell), line and source line. nbpar's own frames that lead into
    the user's function are left out."""
    out: list[str] = []
    for k, part in enumerate(parts):
        if not isinstance(part, Frame):
            out.append(part)
            continue
        if _leads_in(parts, k):
            continue
        filename = _origin(part)
        cell = _cell_label(filename)
        place = f"{cell}, line {part.lineno}" if cell else f'File "{filename}", line {part.lineno}'
        out.append(f"  {place}, in {part.name}\n")
        line = ((linecache.getline(filename, part.lineno).strip() if part.lineno else "")
                or part.line)
        if line:
            out.append(f"    {line}\n")
    return "".join(out)

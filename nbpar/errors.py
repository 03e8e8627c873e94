"""nbpar's exceptions, and how a worker's exception crosses back to the caller.

A worker captures an exception as an `ErrorPayload`: the pickled exception (when it pickles
and unpickles), its type name, message and formatted traceback. The caller rebuilds the
original type from it, with the worker's traceback text as `__cause__` and a note naming the
item, its index and the worker -- the way CPython's concurrent.futures does it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import pickle
import reprlib
import traceback
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from . import tracebacks

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6


_MAX_DESCRIBE = 200


def describe(obj) -> str:
    """A short repr for messages: an item may be a megabyte of text, or deeply nested."""
    try:
        text = _repr.repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        return f"<{type(obj).__name__} object>"
    return text if len(text) <= _MAX_DESCRIBE else text[:_MAX_DESCRIBE - 3] + "..."


class NbparError(Exception):
    """Base class of nbpar's own errors."""


class CheckpointError(NbparError, ValueError):
    """A checkpoint file that cannot be used: damaged or foreign, unsafe (another user may
    write it), in use by another process, or read-only with work left. Names the file."""


class WorkerDiedError(NbparError, BrokenProcessPool):
    """A worker process died while running a task (segfault, os._exit, killed), or the
    fork server it came from died.

    A `concurrent.futures.process.BrokenProcessPool`, so code written for the stdlib's
    executor catches it; the pool itself replaces the worker and stays usable.

    Parameters
    ----------
    message : str
        What happened: the worker, the item and the exit code or signal.
    worker_id, exitcode, item, index : optional
        The worker, its exit code (negative: the signal's number), and the item it was
        running with its index in the input, when known; kept as attributes.
    """

    def __init__(self, message: str, *, worker_id: int | None = None,
                 exitcode: int | None = None, item: object = None,
                 index: int | None = None) -> None:
        super().__init__(message)
        self.worker_id = worker_id
        self.exitcode = exitcode
        self.item = item
        self.index = index

    def __reduce__(self):
        return (_rebuild_kw, (type(self), self.args, dict(worker_id=self.worker_id,
                exitcode=self.exitcode, item=self.item, index=self.index)))


class TaskTimeoutError(NbparError, TimeoutError):
    """A task ran longer than the pool's task_timeout."""


class SerializationError(NbparError, TypeError):
    """An argument, a result or an exception could not be pickled or unpickled."""

    item: Any  # (set when one item is to blame, with its index)
    index: Any


class StoppedError(NbparError, concurrent.futures.CancelledError):
    """A map ended by STOP or STOP_RIGHTNOW; `.report` holds what finished.

    Continue it with `pool.map(func, report=err.report)`. A
    `concurrent.futures.CancelledError`.

    Parameters
    ----------
    message : str
        How far the map got and how to continue it.
    report : nbpar.Report, optional
        The stopped map's report, kept as `.report`.
    """

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report

    def __reduce__(self):
        return (_rebuild_kw, (type(self), self.args, dict(report=self.report)))

    def _render_traceback_(self):  # IPython shows one line instead of internal frames
        return [f"{type(self).__name__}: {self}"]


def ended_early(report, how: str, resume: str) -> str:
    """The one line a stopped or interrupted map ends with: how far it got, and the call
    that continues it."""
    total = "?" if report is None or report.total is None else report.total
    done = 0 if report is None else report.done
    pending = "" if report is None else f" ({len(report.pending)} pending)"
    return (f"the map was {how} after {done} of {total} items{pending}; continue it with "
            f"{resume}")


def interrupted(message: str, report=None) -> KeyboardInterrupt:
    """What a map interrupted by Ctrl-C or Jupyter raises: KeyboardInterrupt itself, not a
    subclass, so an uncaught one still ends a script as Ctrl-C does (killed by SIGINT: status
    130 in a shell). It carries `message` (`ended_early`) and the map's `.report`, and IPython
    shows its one line instead of the frames it was waiting in."""
    error = KeyboardInterrupt(message)
    error.report = report  # type: ignore[attr-defined]
    error._render_traceback_ = _Lines(  # type: ignore[attr-defined]
        [f"KeyboardInterrupt: {message}"])
    return error


class _Lines:
    """A `_render_traceback_` that shows fixed lines."""

    def __init__(self, lines):
        self.lines = lines

    def __call__(self):
        return list(self.lines)


class JobError(NbparError):
    """A command run by `nbpar.run_job` failed: a non-zero exit, a signal, or an abort.

    Its parameters are kept as attributes of the same names.

    Parameters
    ----------
    message : str
        What failed, and how.
    cmd : str, optional
        The command.
    job_id : str, optional
        The grid engine's id of the job.
    exit_status : int, optional
        Its exit status, or None when the job did not exit by itself.
    signal : str, optional
        The signal that ended it (e.g. "SIGKILL"), or None.
    aborted : bool, default False
        Terminated by the grid engine or by nbpar (STOP_RIGHTNOW, a timeout) before it
        finished.
    timed_out : bool, default False
        Ended by run_job's `timeout`.
    stdout, stderr : str
        What the job wrote.
    """

    def __init__(self, message, *, cmd=None, job_id=None, exit_status=None, signal=None,
                 aborted=False, timed_out=False, stdout="", stderr=""):
        super().__init__(message)
        self.cmd = cmd
        self.job_id = job_id
        self.exit_status = exit_status
        self.signal = signal
        self.aborted = aborted
        self.timed_out = timed_out
        self.stdout = stdout
        self.stderr = stderr

    def __reduce__(self):
        return (_rebuild_kw, (type(self), self.args, dict(
            cmd=self.cmd, job_id=self.job_id, exit_status=self.exit_status,
            signal=self.signal, aborted=self.aborted, timed_out=self.timed_out,
            stdout=self.stdout, stderr=self.stderr)))


def _rebuild_kw(cls, args, kwargs):
    return cls(*args, **kwargs)


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised in a worker."""

    def __init__(self, tb_text: str):
        super().__init__(tb_text)
        self.tb = tb_text

    def __str__(self):
        return f'\n"""\n{self.tb}"""'


@dataclass(frozen=True, slots=True)
class ErrorPayload:
    """An exception as it crosses a process boundary."""

    type_name: str
    message: str
    traceback: str
    exc_bytes: bytes | None  # None when the exception itself does not pickle
    pickle_problem: str | None = None
    frames: tuple | None = None  # the chain as text and frames, for the caller to format


def _frames(exc):
    try:
        return tracebacks.capture_frames(exc)
    except Exception:  # noqa: BLE001 - the formatted text is there to fall back on
        return None


def capture(exc: BaseException, dumps=None) -> ErrorPayload:
    """Capture `exc` in a worker; checks here that it will unpickle on the other side."""
    tb_text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    problem = None
    data = None
    try:
        data = (dumps or pickle.dumps)(exc)
        pickle.loads(data)
    except Exception as why:  # noqa: BLE001 - any failure means it cannot cross
        data = None
        problem = f"{type(why).__name__}: {why}"
    return ErrorPayload(type_name, _safe_str(exc), tb_text, data, problem, _frames(exc))


def _safe_str(exc) -> str:
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error itself
        return f"<unprintable {type(exc).__name__}>"


def rebuild(payload: ErrorPayload, *, where: str) -> BaseException:
    """The caller-side exception for a payload, with the remote traceback as its cause."""
    exc = None
    if payload.exc_bytes is not None:
        try:
            exc = pickle.loads(payload.exc_bytes)
        except Exception as why:  # noqa: BLE001
            payload = dataclasses.replace(payload, exc_bytes=None,
                                          pickle_problem=f"{type(why).__name__}: {why}")
    if exc is None:
        exc = SerializationError(
            f"the exception {payload.type_name}({payload.message!r}) could not be sent back "
            f"from the worker ({payload.pickle_problem})")
    exc.__cause__ = RemoteTraceback(_text(payload))
    add_note(exc, f"nbpar: {where}")
    return exc


def _text(payload: ErrorPayload) -> str:
    """The worker's traceback as the caller formats it, or as the worker did."""
    if payload.frames is not None:
        try:
            return tracebacks.render(payload.frames)
        except Exception:  # never hide the error behind its formatting
            logging.getLogger("nbpar").debug("formatting a worker's frames failed; "
                                             "its own text is shown", exc_info=True)
    return payload.traceback


def add_note(exc: BaseException, note: str) -> None:
    notes = getattr(exc, "__notes__", None)
    if notes is None or note not in notes:
        exc.add_note(note)


def where(item, index, worker_id) -> str:
    """The standard phrase naming a task: used in every error note."""
    return f"raised by item {describe(item)} (index {index}) on worker {worker_id}"

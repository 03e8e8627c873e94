"""Logging from workers: `nbpar.get_logger()` inside a task.

In a worker process, the logger's records travel to the caller whole -- one message per record
on the worker's pipe -- and are handled there by the caller's own handlers (and shown in the
notebook widget's output pane). Lines from different workers never interleave or tear, and the
user creates no manager, queue or lock. In threads (and in the caller itself) it is simply the
named logger: the caller's handlers run directly. On a Dask worker, whose threads run other
programs' tasks too, the records of a thread running an nbpar batch are kept aside
(`diverted`) and travel back with the batch's results.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager

DEFAULT_LEVEL = logging.INFO
_installed: dict = {}  # in a worker process: "send", "worker_id", "level"
_thread = threading.local()  # .records, .level, .worker_id: while a Dask batch runs here


def get_logger(name: str | None = None) -> logging.Logger:
    """The logger for a task's records: call it inside the task.

    Its records go to the caller and are handled there by the caller's own handlers, one
    whole record at a time, under every start method (in a notebook they also appear in the
    widget's output pane). The level in the workers is the pool's `log_level`.

    Parameters
    ----------
    name : str, optional
        The logger's name. Default None: "nbpar.task".

    Returns
    -------
    logging.Logger
    """
    logger = logging.getLogger(name or "nbpar.task")
    if _installed and not any(isinstance(h, _ToCaller) for h in logger.handlers):
        logger.addHandler(_ToCaller())
        logger.setLevel(_installed["level"])
        logger.propagate = False  # the caller's handlers decide, not this process's
    elif getattr(_thread, "records", None) is not None:
        if not any(isinstance(f, _Divert) for f in logger.filters):
            logger.addFilter(_Divert())
        if logger.level == logging.NOTSET or logger.level > _thread.level:
            logger.setLevel(_thread.level)  # (the process's: the lowest level asked wins)
    return logger


@contextmanager
def diverted(worker_id: int, level):
    """While a batch runs in this thread (of a Dask worker): its tasks' records are kept in
    the list this yields, as the caller will want them, rather than handled here."""
    _thread.records, _thread.worker_id = [], worker_id
    _thread.level = DEFAULT_LEVEL if level is None else level
    try:
        yield _thread.records
    finally:
        _thread.records = None


class _Divert(logging.Filter):
    """Takes a record made in a thread running a batch (see `diverted`); elsewhere lets it be."""

    def filter(self, record):
        records = getattr(_thread, "records", None)
        if records is None:
            return True
        if record.levelno >= _thread.level:
            try:
                records.append(_as_data(record, _thread.worker_id))
            except Exception:  # noqa: BLE001 - a bad record: this process's handlers say so
                return True
        return False  # not for this Dask worker's handlers: the caller's will have it


def install(send, worker_id: int, level) -> None:
    """In a worker process: where records go (called once, when the worker starts)."""
    _installed.update(send=send, worker_id=worker_id,
                      level=DEFAULT_LEVEL if level is None else level)


class _ToCaller(logging.Handler):
    def emit(self, record):
        try:
            _installed["send"](_as_data(record, _installed["worker_id"]))
        except Exception:  # noqa: BLE001 - logging must never break a task
            self.handleError(record)


def _as_data(record, worker_id) -> dict:
    """A record as plain data that pickles: its message formatted, its traceback as text."""
    data = dict(record.__dict__)
    data["msg"], data["args"] = record.getMessage(), None
    if record.exc_info:
        data["exc_text"] = logging.Formatter().formatException(record.exc_info)
    data["exc_info"] = None
    data["nbpar_worker"] = worker_id
    return data


def handle_in_caller(data: dict) -> logging.LogRecord:
    """In the caller: rebuild a worker's record and let the caller's handlers have it."""
    record = logging.makeLogRecord(data)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)
    return record

"""Logging from workers: `nbpar.get_logger()` inside a task.

In a worker process, the logger's records travel to the caller whole -- one message per record
on the worker's pipe -- and are handled there by the caller's own handlers (and shown in the
notebook widget's output pane). Lines from different workers never interleave or tear, and the
user creates no manager, queue or lock. In threads (and in the caller itself) it is simply the
named logger: the caller's handlers run directly.
"""

from __future__ import annotations

import logging

DEFAULT_LEVEL = logging.INFO
_installed: dict = {}  # in a worker process: "send", "worker_id", "level"


def get_logger(name: str | None = None) -> logging.Logger:
    """The logger for a task's records, `name` or "nbpar.task"."""
    logger = logging.getLogger(name or "nbpar.task")
    if _installed and not any(isinstance(h, _ToCaller) for h in logger.handlers):
        logger.addHandler(_ToCaller())
        logger.setLevel(_installed["level"])
        logger.propagate = False  # the caller's handlers decide, not this process's
    return logger


def install(send, worker_id: int, level) -> None:
    """In a worker process: where records go (called once, when the worker starts)."""
    _installed.update(send=send, worker_id=worker_id,
                      level=DEFAULT_LEVEL if level is None else level)


class _ToCaller(logging.Handler):
    def emit(self, record):
        try:
            data = dict(record.__dict__)
            data["msg"], data["args"] = record.getMessage(), None
            if record.exc_info:
                data["exc_text"] = logging.Formatter().formatException(record.exc_info)
            data["exc_info"] = None
            data["nbpar_worker"] = _installed["worker_id"]
            _installed["send"](data)
        except Exception:  # noqa: BLE001 - logging must never break a task
            self.handleError(record)


def handle_in_caller(data: dict) -> logging.LogRecord:
    """In the caller: rebuild a worker's record and let the caller's handlers have it."""
    record = logging.makeLogRecord(data)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)
    return record

"""Exceptions crossing the worker boundary: capture in the worker, rebuild in the caller."""

from __future__ import annotations

import concurrent.futures
import pickle
import threading
from concurrent.futures.process import BrokenProcessPool

import pytest

from nbpar.errors import (ErrorPayload, NbparError, RemoteTraceback, SerializationError,
                          StoppedError, TaskTimeoutError, WorkerDiedError, add_note, capture,
                          describe, rebuild, where)
from nbpar.reports import Report

WHERE = "raised by item 3 (index 3) on worker 1"


class CustomError(Exception):
    """Pickles and unpickles: the usual case."""


class TwoArgsError(Exception):
    """Pickles, but cannot be unpickled: __init__ needs two arguments, args holds one."""

    def __init__(self, path, code):
        super().__init__(f"{path} failed with {code}")
        self.path, self.code = path, code


class LockedError(Exception):
    """Cannot even be pickled: it holds a lock."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


class BadStrError(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


def raise_it(exc):
    raise exc


def captured(exc):
    """capture() as a worker calls it: on a raised exception, with its traceback."""
    try:
        raise_it(exc)
    except BaseException as caught:  # noqa: BLE001
        return capture(caught)


def _without_carets(text):
    return "".join(line for line in text.splitlines(keepends=True)
                   if line.strip(" ~^\n") or not line.strip())


# ----------------------------------------------------------------------------- round trip

@pytest.mark.parametrize("exc", [
    ValueError("bad value"),
    KeyError("missing"),
    ZeroDivisionError("division by zero"),
    CustomError("custom", 42),
    OSError(2, "No such file"),
    KeyboardInterrupt(),
])
def test_capture_rebuild_keeps_type_args_and_remote_traceback(exc):
    payload = captured(exc)
    assert payload.exc_bytes is not None and payload.pickle_problem is None
    assert payload.type_name == f"{type(exc).__module__}.{type(exc).__qualname__}"
    rebuilt = rebuild(payload, where=WHERE)
    assert type(rebuilt) is type(exc)
    assert rebuilt.args == exc.args
    cause = rebuilt.__cause__
    assert isinstance(cause, RemoteTraceback)
    # the caller formats the worker's frames itself: the same text, less the column markers
    assert cause.tb == _without_carets(payload.traceback)
    assert "raise_it" in cause.tb and "Traceback (most recent call last)" in cause.tb
    assert f'"""\n{cause.tb}"""' in str(cause)
    assert rebuilt.__notes__ == [f"nbpar: {WHERE}"]


def test_payload_carries_message_and_traceback_text():
    payload = captured(ValueError("bad value"))
    assert payload.message == "bad value"
    assert payload.traceback.rstrip().endswith("ValueError: bad value")


def test_payload_pickles_itself():
    payload = captured(CustomError("x"))
    assert pickle.loads(pickle.dumps(payload)) == payload


def test_notes_from_the_worker_are_kept():
    exc = ValueError("bad")
    exc.add_note("computed in step 2")
    rebuilt = rebuild(captured(exc), where=WHERE)
    assert rebuilt.__notes__ == ["computed in step 2", f"nbpar: {WHERE}"]


def test_rebuilding_twice_gives_distinct_exceptions():
    payload = captured(ValueError("bad"))
    first, second = rebuild(payload, where=WHERE), rebuild(payload, where=WHERE)
    assert first is not second
    assert second.__notes__ == [f"nbpar: {WHERE}"]


# ----------------------------------------------------------------------------- not serializable

@pytest.mark.parametrize("exc, problem", [
    (TwoArgsError("/data/x", 3), "TypeError"),     # unpickling calls __init__ with one arg
    (LockedError("locked up"), "TypeError"),       # a lock cannot be pickled
])
def test_an_exception_that_cannot_cross_becomes_serialization_error(exc, problem):
    payload = captured(exc)
    assert payload.exc_bytes is None
    assert payload.pickle_problem.startswith(problem)
    assert payload.message == str(exc)
    rebuilt = rebuild(payload, where=WHERE)
    assert type(rebuilt) is SerializationError
    assert isinstance(rebuilt, TypeError) and isinstance(rebuilt, NbparError)
    assert type(exc).__qualname__ in str(rebuilt)
    assert str(exc) in str(rebuilt)
    assert "could not be sent back" in str(rebuilt)
    assert isinstance(rebuilt.__cause__, RemoteTraceback)
    assert f"{type(exc).__name__}: {exc}" in rebuilt.__cause__.tb
    assert rebuilt.__notes__ == [f"nbpar: {WHERE}"]


def test_bytes_that_do_not_unpickle_in_the_caller_become_serialization_error():
    payload = ErrorPayload("somewhere.GoneError", "it went", "Traceback...\n", b"not a pickle")
    rebuilt = rebuild(payload, where=WHERE)
    assert type(rebuilt) is SerializationError
    assert "somewhere.GoneError('it went')" in str(rebuilt)
    assert "UnpicklingError" in str(rebuilt)
    assert rebuilt.__cause__.tb == "Traceback...\n"


def test_capture_uses_the_given_dumps():
    def refuse(obj):
        raise RuntimeError("cloudpickle says no")

    payload = capture(ValueError("x"), dumps=refuse)
    assert payload.exc_bytes is None
    assert payload.pickle_problem == "RuntimeError: cloudpickle says no"


def test_capture_survives_a_broken_str():
    payload = captured(BadStrError())
    assert payload.message == "<unprintable BadStrError>"
    assert type(rebuild(payload, where=WHERE)) is BadStrError


# ----------------------------------------------------------------------------- hierarchy

@pytest.mark.parametrize("cls, bases", [
    (WorkerDiedError, (BrokenProcessPool, RuntimeError, NbparError)),
    (TaskTimeoutError, (TimeoutError, concurrent.futures.TimeoutError, NbparError)),
    (SerializationError, (TypeError, NbparError)),
    (StoppedError, (concurrent.futures.CancelledError, NbparError)),
    (NbparError, (Exception,)),
])
def test_hierarchy(cls, bases):
    assert issubclass(cls, bases)


def test_code_written_for_process_pool_executor_catches_worker_died():
    with pytest.raises(BrokenProcessPool):
        raise WorkerDiedError("worker 1 died", worker_id=1, exitcode=-11, item="x", index=4)


def test_worker_died_error_keeps_its_fields_through_pickle():
    err = WorkerDiedError("worker 1 died", worker_id=1, exitcode=-11, item="x", index=4)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is WorkerDiedError and str(back) == "worker 1 died"
    assert (back.worker_id, back.exitcode, back.item, back.index) == (1, -11, "x", 4)


def test_worker_died_error_crosses_capture_and_rebuild():
    err = WorkerDiedError("worker 1 died", worker_id=1, exitcode=-9, item=[1], index=0)
    back = rebuild(captured(err), where=WHERE)
    assert type(back) is WorkerDiedError and back.exitcode == -9


def test_stopped_error_carries_its_report():
    report = Report("stopped", 10, 4, 0, 1.0)
    err = StoppedError("the map was stopped", report)
    assert err.report is report
    back = pickle.loads(pickle.dumps(err))
    assert back.report == report and str(back) == "the map was stopped"
    assert StoppedError("no report").report is None


def test_stopped_error_shows_one_line_in_ipython():
    assert StoppedError("stopped: 4 of 10 done")._render_traceback_() == [
        "StoppedError: stopped: 4 of 10 done"]


def test_task_timeout_error_is_caught_as_timeout():
    with pytest.raises(TimeoutError):
        raise TaskTimeoutError("item 3 ran longer than task_timeout=1 s")


# ----------------------------------------------------------------------------- helpers

class BrokenRepr:
    def __repr__(self):
        raise ValueError("no repr")


@pytest.mark.parametrize("obj, expected", [
    (42, "42"),
    ("short", "'short'"),
    (None, "None"),
    ([1, 2, 3], "[1, 2, 3]"),
    (list(range(100)), "[0, 1, 2, 3, 4, 5, ...]"),
    ({"k": 1}, "{'k': 1}"),
])
def test_describe(obj, expected):
    assert describe(obj) == expected


def test_describe_survives_a_broken_repr():
    assert describe(BrokenRepr()).startswith("<BrokenRepr ")


@pytest.mark.parametrize("obj, at_most", [
    ("x" * 10_000, 90),
    (b"y" * 10_000, 90),
    (tuple(range(10_000)), 40),
    ({i: "v" * 50 for i in range(1000)}, 400),
    (["z" * 1000] * 1000, 550),
])
def test_describe_truncates_long_reprs(obj, at_most):
    text = describe(obj)
    assert len(text) <= at_most
    assert "..." in text


def test_describe_of_a_nested_item_stays_short():
    item = [[["z" * 1000] * 6] * 6] * 6
    assert len(describe(item)) < 1000


def test_where_names_item_index_and_worker():
    assert where("a" * 500, 7, 2).startswith("raised by item 'aaaa")
    assert where("a" * 500, 7, 2).endswith("' (index 7) on worker 2")
    assert len(where("a" * 500, 7, 2)) < 150


def test_add_note_does_not_repeat_a_note():
    exc = ValueError("x")
    add_note(exc, "nbpar: once")
    add_note(exc, "nbpar: once")
    add_note(exc, "nbpar: twice")
    assert exc.__notes__ == ["nbpar: once", "nbpar: twice"]

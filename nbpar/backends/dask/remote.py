"""What runs on the Dask workers for nbpar: a batch per Dask task, and a pool's seat.

A pool is present on a Dask worker as a `Seat`, made by the first batch of a generation of
slots that lands there: the leading arguments (shared objects, worker state), worker_init's
outcome and the functions already unpickled. A generation is the pool's slots from the moment
one starts until all are gone, as a local pool's worker processes are: without keep_alive
each map is one, and worker_init runs again for the next.

A batch runs through the very loop a local worker uses (worker._run_batch), so results,
errors and values that do not pickle are handled alike; the message it would send to the
Boss is returned as the task's result instead, with the Dask worker's address, what the
batch printed and the records it logged with nbpar.get_logger. Between items it looks at an
abort flag (STOP_RIGHTNOW, a task timeout), so a killed slot's batch ends at the next item
rather than running to its end.

Only the dask backend imports this module (and so distributed).
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import socket
import sys
import threading
from collections import OrderedDict

from distributed import WorkerPlugin, get_worker

from ... import logs, worker
from ... import messages as m
from ...errors import SerializationError, capture

FUNCS_PER_SEAT = 64

_LOCK = threading.Lock()
_SEATS: dict = {}  # (worker address, token, generation) -> Seat
_ABORTED: set = set()  # (token, batch id) told to stop at the next item
_OUTPUT = threading.local()  # .stdout / .stderr: this thread's capture buffers, if any


class Aborted(Exception):
    """A killed slot's batch stops here; its result is dropped by the caller anyway."""


class Seat:
    """One pool (one generation of its slots) on one Dask worker."""

    def __init__(self, setup, shared):
        flags, init, exit_hook = setup
        self.flags = flags
        self.shared = shared
        self.state = {} if flags["use_worker_state"] else None
        self.exit_hook = exit_hook
        self.init = init
        self.error = None  # worker_init's ErrorPayload, when it raised
        self.ready = False
        self.lock = threading.Lock()  # worker_init runs once, whatever the worker's threads
        self.funcs: OrderedDict = OrderedDict()
        self.funcs_lock = threading.Lock()

    def leading(self, wid) -> list:
        out = [wid] if self.flags["pass_worker_id"] else []
        if self.flags["use_shared"]:
            out.append(self.shared)
        if self.state is not None:
            out.append(self.state)
        return out

    def open(self, wid):
        """Run worker_init once, in the thread of the first batch that lands here."""
        with self.lock:
            if self.ready:
                return
            self.ready = True
            if self.init is not None:
                try:
                    pickle.loads(self.init)(*self.leading(wid))
                except BaseException as exc:  # noqa: BLE001 - reported, not raised
                    self.error = capture(exc)

    def function(self, key, body):
        """The function under `key`, unpickled once (the latest FUNCS_PER_SEAT are kept)."""
        with self.funcs_lock:
            func = self.funcs.get(key)
            if func is None:
                try:
                    func = pickle.loads(body)
                except BaseException as exc:  # noqa: BLE001
                    func = _raiser(SerializationError(
                        f"the function could not be unpickled on the Dask worker: {exc!r}"))
                self.funcs[key] = func
                if len(self.funcs) > FUNCS_PER_SEAT:
                    self.funcs.popitem(last=False)
            else:
                self.funcs.move_to_end(key)
            return func


def _raiser(exc):
    def raise_it(*args):
        raise exc
    return raise_it


def _seat(address, token, gen, setup, shared) -> Seat:
    key = (address, token, gen)
    with _LOCK:
        seat = _SEATS.get(key)
        if seat is None:
            seat = _SEATS[key] = Seat(setup, shared)
        return seat


class _Sink:
    """Stands for the Boss's channel in worker._run_batch: keeps the message it sends."""

    encode = staticmethod(worker.dumps)
    decode = staticmethod(pickle.loads)

    def __init__(self):
        self.msg = None

    def send(self, msg):
        self.msg = msg


class _Flags:
    """The 'progress board' worker._run_batch marks between items: here, the abort check."""

    def __init__(self, flag):
        self.flag = flag

    def __setitem__(self, wid, position):
        if self.flag in _ABORTED:
            raise Aborted("stopped by nbpar (STOP_RIGHTNOW or a task timeout)")


def run_batch(token, gen, wid, setup, func_body, batch: m.Batch, shared):
    """One batch of one pool: ("ran" | "init-failed" | "aborted", message, address, output)."""
    address = get_worker().address
    flag = (token, batch.batch_id)
    if flag in _ABORTED:
        _ABORTED.discard(flag)
        return "aborted", None, address, None
    try:
        seat = _seat(address, token, gen, setup, shared)
        with _captured() as out, logs.diverted(wid, seat.flags.get("log_level")) as records:
            seat.open(wid)
            if seat.error is not None:
                return "init-failed", m.InitFailed(seat.error), address, out.text(records)
            sink = _Sink()
            worker._run_batch(sink, batch, seat.function(batch.func_key, func_body),
                              seat.leading(wid), _Flags(flag), wid)
        return "ran", sink.msg, address, out.text(records)
    finally:
        _ABORTED.discard(flag)


def run_exit(token, gen):
    """worker_exit for this generation's seat here, and the seat dropped: an m.Exited."""
    address = get_worker().address
    with _LOCK:
        seat = _SEATS.pop((address, token, gen), None)
    if seat is None or seat.exit_hook is None or not seat.ready or seat.error is not None:
        return None
    result, error = None, None
    with _captured() as out:
        try:
            result = pickle.loads(seat.exit_hook)(*seat.leading(None))
        except BaseException as exc:  # noqa: BLE001
            error = capture(exc)
    try:
        body = worker.dumps(result)
    except Exception as why:  # noqa: BLE001
        body, error = worker.dumps(None), capture(SerializationError(
            f"worker_exit returned a {type(result).__name__} that cannot be pickled: {why}"))
    return m.Exited(body, error), out.text()


def abort(token, batch_ids):
    """Flag these batches to stop at their next item (run by client.run, on the worker)."""
    _ABORTED.update((token, b) for b in batch_ids)


def forget(token, below=None):
    """Drop a pool's seats (all, or those of generations < below) without running exits."""
    with _LOCK:
        for key in [k for k in _SEATS if k[1] == token and (below is None or k[2] < below)]:
            del _SEATS[key]
        if below is None:
            _ABORTED.difference_update([f for f in _ABORTED if f[0] == token])


def kill_this_worker():
    """STOP_RIGHTNOW on a batch that will not stop: the worker's nanny starts a fresh one."""
    os.kill(os.getpid(), signal.SIGKILL)


# ----------------------------------------------------------------------------- output

class _Captured:
    def __init__(self):
        self.parts = {"stdout": [], "stderr": []}

    def text(self, records=()):
        """What the batch printed, by stream, and under "log" the records it logged."""
        out = {name: "".join(parts) for name, parts in self.parts.items() if parts}
        if records:
            out["log"] = list(records)
        return out or None


class _captured:
    """Route this thread's prints into a buffer while a batch runs (other threads: as before)."""

    def __enter__(self):
        _install_tees()
        self.cap = _Captured()
        _OUTPUT.parts = self.cap.parts
        return self.cap

    def __exit__(self, *exc):
        _OUTPUT.parts = None
        return False


class _Tee:
    """sys.stdout / sys.stderr of a Dask worker: a batch's thread writes to its buffer."""

    def __init__(self, original, name):
        self._original = original
        self._name = name

    def write(self, text):
        parts = getattr(_OUTPUT, "parts", None)
        if parts is None:
            return self._original.write(text)
        parts[self._name].append(text)
        return len(text)

    def flush(self):
        if getattr(_OUTPUT, "parts", None) is None:
            self._original.flush()

    def __getattr__(self, name):
        return getattr(self._original, name)


def _install_tees():
    if isinstance(sys.stdout, _Tee) and isinstance(sys.stderr, _Tee):
        return
    with _LOCK:
        if not isinstance(sys.stdout, _Tee):
            sys.stdout = _Tee(sys.stdout or io.StringIO(), "stdout")
        if not isinstance(sys.stderr, _Tee):
            sys.stderr = _Tee(sys.stderr or io.StringIO(), "stderr")


# ----------------------------------------------------------------------------- SIGINT

class IgnoreSigint(WorkerPlugin):
    """Jupyter's interrupt is a SIGINT to the kernel's whole process group, and a
    LocalCluster's worker processes are in it: without this they die of it (and their nanny
    does not bring them back). Workers in the caller's process group on the caller's host
    ignore SIGINT; any other worker (a remote cluster, `dask worker` in a terminal) is left
    as it is."""

    idempotent = True

    def __init__(self, host, pgid):
        self.host, self.pgid = host, pgid

    def setup(self, worker=None):
        if (socket.gethostname() == self.host and os.getpgrp() == self.pgid
                and threading.current_thread() is threading.main_thread()):
            signal.signal(signal.SIGINT, signal.SIG_IGN)

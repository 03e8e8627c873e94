"""What runs inside a worker: receive a batch, call the function, send back what happened.

The same loop serves threads and processes of every start method; only the channel differs
(pickled bytes on a pipe, or objects on an in-process queue). It imports nothing of the Boss,
the pool or the UI, so a worker starts light. Process workers ignore SIGINT (Jupyter's
interrupt hits the whole process group: only the Boss decides what stops) and die with their
parent.
"""

from __future__ import annotations

import ctypes
import faulthandler
import io
import logging
import os
import pickle
import signal
import sys
import threading
import time
from functools import partial

from . import inner_threads
from . import messages as m
from . import tracebacks
from .errors import SerializationError, capture, describe
from .main_refs import refers_to_main
from .titles import set_title, worker_titles

_log = logging.getLogger(__name__)

_perf = time.perf_counter


def dumps(obj) -> bytes:
    """Pickle a body so that every start method can load it. What lives in a __main__ (a
    notebook, a script), lambdas, local functions and modules registered with cloudpickle's
    `register_pickle_by_value` go by value, through cloudpickle; any other body takes plain
    pickle, several times cheaper for the small bodies of single calls. Plain pickle refers
    to classes and functions by module and name, as cloudpickle does for importable modules,
    and what names `__main__` is found as main_refs.py says."""
    try:
        data = pickle.dumps(obj, protocol=5)
    except Exception:  # noqa: BLE001 - a lambda, a local function: cloudpickle's job
        data = None
    if data is None or (_registry if _registry is not None else _by_value_registry()) or (
            b"__main__" in data and refers_to_main(obj)):
        return tracebacks.dumps_by_value(obj)
    return data


_cloudpickle = None  # imported at the first body pickled, then kept at hand
_registry: set | None = None  # cloudpickle's own set of modules pickled by value, if found


def _by_value_registry():
    """The modules registered with cloudpickle's `register_pickle_by_value`. The first call
    keeps cloudpickle's own set at hand when it has one where expected, so that each body
    pickled looks at a set, not at a copy made by a call; else every call asks cloudpickle."""
    global _cloudpickle, _registry
    if _cloudpickle is None:
        import cloudpickle
        _cloudpickle = cloudpickle
        own = getattr(getattr(cloudpickle, "cloudpickle", None), "_PICKLE_BY_VALUE_MODULES", None)
        if type(own) is set and own == cloudpickle.list_registry_pickle_by_value():
            _registry = own
    return _cloudpickle.list_registry_pickle_by_value()


def first_unpicklable(values) -> tuple[int, str]:
    """Index of the first value that does not pickle, and why."""
    for k, value in enumerate(values):
        try:
            dumps(value)
        except Exception as why:  # noqa: BLE001
            return k, f"{type(why).__name__}: {why}"
    return 0, "unknown reason"


class PipeChannel:
    """The worker's end of its duplex pipe to the Boss: pickled messages, pickled bodies.
    Sends are locked: a task's own threads may log while the worker sends a result."""

    def __init__(self, conn):
        self.conn = conn  # owns the fd; read and written through PipeEnd (one call each)
        self.end = m.PipeEnd(conn.fileno())
        self.lock = threading.Lock()

    def recv(self):
        return m.from_wire(self.end.recv_bytes())

    def send(self, msg):
        data = m.to_wire(msg)
        with self.lock:
            self.end.send_bytes(data)

    encode = staticmethod(dumps)
    decode = staticmethod(pickle.loads)


def run(channel, setup: m.WorkerSetup, shared, progress, hooks=None, load_func=None) -> None:
    """The worker loop: init, then batches until told to retire, then exit hook. Process
    workers pass the hooks they got with the shared objects, and how to load a function
    that refers to them (bundle.py); threads and Dask take both from the setup."""
    wid = setup.worker_id
    leading: list = []
    if setup.pass_worker_id:
        leading.append(wid)
    if setup.use_shared:
        leading.append(shared)
    if setup.use_worker_state:
        leading.append({})
    decode = channel.decode
    load_func = load_func or decode
    if hooks is not None:
        init = hooks[0]
    else:
        init = decode(setup.worker_init) if setup.worker_init is not None else None
    if init is not None:
        try:
            init(*leading)
        except BaseException as exc:  # noqa: BLE001 - reported, not raised
            _flush()
            channel.send(m.InitFailed(capture(exc)))
            return
    channel.send(m.Ready(os.getpid()))
    funcs = dict(setup.funcs or {})
    while True:
        try:
            msg = channel.recv()
        except (EOFError, OSError):
            return  # the Boss is gone
        kind = type(msg)
        if kind is m.Batch:
            _run_batch(channel, msg, funcs[msg.func_key], leading, progress, wid,
                       setup.report_start)
        elif kind is m.Func:
            try:
                funcs[msg.key] = load_func(msg.body)
            except BaseException as exc:  # noqa: BLE001
                funcs[msg.key] = partial(_raise, SerializationError(
                    f"the function could not be unpickled in the worker: {exc!r}"))
        elif kind is m.Forget:
            funcs.pop(msg.key, None)
        elif kind is m.Retire:
            break
    if hooks is not None:
        exit_hook = hooks[1]
    else:
        exit_hook = decode(setup.worker_exit) if setup.worker_exit is not None else None
    result, error = None, None
    if exit_hook is not None:
        try:
            result = exit_hook(*leading)
        except BaseException as exc:  # noqa: BLE001
            error = capture(exc)
    _flush()
    try:
        body = channel.encode(result)
    except Exception as why:  # noqa: BLE001
        body, error = channel.encode(None), capture(SerializationError(
            f"worker_exit returned a {type(result).__name__} that cannot be pickled: {why}"))
    channel.send(m.Exited(body, error))


def _raise(exc, *args):
    raise exc


def _run_batch(channel, msg, func, leading, progress, wid, report_start=False):
    progress[wid] = 0  # a crash while unpickling this batch is not its predecessor's
    try:
        items = channel.decode(msg.body)
    except BaseException as exc:  # noqa: BLE001
        err = SerializationError(f"the items of this batch could not be unpickled in the "
                                 f"worker: {type(exc).__name__}: {exc}")
        channel.send(m.Failed(msg.batch_id, 0.0, channel.encode([]), capture(err)))
        return
    if report_start:
        channel.send(m.Started(msg.batch_id))
    call = partial(func, *leading) if leading else func
    results = []
    append = results.append
    n = len(items)
    step = m.progress_span(n)
    start = _perf()
    try:
        for first in range(0, n, step):
            progress[wid] = first  # where a crash happened, for the Boss to name the item
            block = items[first:first + step] if step < n else items
            if msg.star:
                for item in block:
                    append(call(*item))
            else:
                for item in block:
                    append(call(item))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back to the Boss
        elapsed = _perf() - start
        _flush()
        channel.send(m.Failed(msg.batch_id, elapsed, _encode_results(channel, results)[0],
                              capture(exc)))
        return
    elapsed = _perf() - start
    _flush()
    body, bad = _encode_results(channel, results)
    if bad is None:
        channel.send(m.Done(msg.batch_id, elapsed, body))
    else:
        k, why = bad
        err = SerializationError(f"the result for item {describe(items[k])} is a "
                                 f"{type(results[k]).__name__} that cannot be pickled: {why}")
        channel.send(m.Failed(msg.batch_id, elapsed, channel.encode(results[:k]), capture(err)))


def _encode_results(channel, results):
    try:
        return channel.encode(results), None
    except Exception:  # noqa: BLE001
        k, why = first_unpicklable(results)
        return channel.encode(results[:k]), (k, why)


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a task's broken stream must not fail its batch
            _log.debug("flushing %r failed", stream, exc_info=True)


# ----------------------------------------------------------------------------- processes

def bootstrap(conn, out_fd, err_fd, setup: m.WorkerSetup, shared, close_fds=()):
    """Entry point of a worker process, the same for fork, forkserver and spawn. `shared` is
    the pool's bundle: shared objects, worker_init and worker_exit (bundle.py)."""
    set_title(*worker_titles(setup.worker_id, setup.pool_number))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _own_process_group()
    _allow_children()
    _die_with_parent()
    for fd in close_fds:
        try:
            os.close(fd)
        except OSError:
            _log.debug("closing the inherited fd %s failed", fd, exc_info=True)
    _redirect(fd_of(out_fd), 1)
    _redirect(fd_of(err_fd), 2)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    faulthandler.enable(sys.stderr)  # a crash's Python traceback reaches the caller, tagged
    _enter_callers_world(setup)
    inner_threads.cap(setup.inner_threads)  # before the shared objects load a library
    from .bundle import open_bundle
    from .shared import ProgressBoard
    bundle = open_bundle(shared)
    progress = ProgressBoard.attach(setup.progress)
    channel = PipeChannel(conn)
    from . import logs
    logs.install(lambda record: channel.send(m.Log(record)), setup.worker_id, setup.log_level)
    try:
        run(channel, setup, bundle.shared, progress, (bundle.init, bundle.exit),
            bundle.load_func)
    finally:
        _flush()


def _enter_callers_world(setup: m.WorkerSetup):
    """Take on the caller's environment, argv, working directory, sys.path and authkey as
    they were when this worker was started, whatever process it was forked from. (With the
    caller's authkey, a proxy to the caller's multiprocessing manager works in a task.)"""
    if setup.authkey is not None:
        import multiprocessing
        multiprocessing.current_process().authkey = setup.authkey
    if setup.environ is not None:
        os.environ.clear()
        os.environ.update(setup.environ)
    if setup.argv is not None:
        sys.argv[:] = list(setup.argv)
    if setup.cwd is not None:
        try:
            os.chdir(setup.cwd)
        except OSError:  # removed since: the worker keeps the directory it has
            _log.debug("the caller's directory %s is gone", setup.cwd, exc_info=True)
    if setup.sys_path:
        sys.path[:] = list(setup.sys_path)


def fd_of(obj) -> int:
    """An fd handed over by any start method: an int, or a wrapper to detach."""
    return obj if isinstance(obj, int) else obj.detach()


def _redirect(fd, target):
    if fd != target:
        os.dup2(fd, target)
        os.close(fd)


def _own_process_group():
    """Lead a process group of its own, so that when nbpar kills this worker (a timeout,
    STOP_RIGHTNOW, Ctrl-C) the processes its tasks started go with it (backends/process.py
    kills the group). SIGINT to the caller's group no longer reaches the worker, which
    ignored it anyway: the Boss decides what stops."""
    try:
        os.setpgid(0, 0)
    except OSError:  # a session leader already (cannot happen for a forked child; harmless)
        _log.debug("the worker leads no process group of its own", exc_info=True)


def _allow_children():
    """Workers are not daemonic to the tasks they run, under every start method (MPIRE's
    daemon=False): a task may start processes, nbpar pools included. The caller's side
    still starts fork and spawn workers daemonic, so multiprocessing ends them if the caller
    exits; nothing outlives its pool either way (PDEATHSIG, process groups, the Boss)."""
    import multiprocessing
    try:
        multiprocessing.current_process().daemon = False
    except AssertionError:  # not a multiprocessing child (cannot happen for nbpar's workers)
        _log.debug("the worker's process stays daemonic", exc_info=True)


def _die_with_parent():
    """Ask Linux to SIGKILL this worker when its parent dies: no orphans, ever."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

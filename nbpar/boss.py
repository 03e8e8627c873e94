"""The Boss: one thread per pool, the one owner of pending work, running workers and reports.

    caller / widget / magic ──(control pipe: Signal, new maps, report requests)──┐
                                                                                 ▼
    worker pipes (results) ─┐                                         ┌──── Boss thread
    worker sentinels (death)├── one epoll set, for the Boss's life ───┤  events → BossState
    worker stdout / stderr ─┘     (timeout = nearest task deadline)   └──── instructions out

The thread blocks in a single wait on everything that can happen; it never polls. What it
hears becomes events for the pure state machine (state.py); what the machine answers --
start, dispatch, kill, retire, deliver, finish -- is carried out here. Worker output is read
here, split into lines and handed on tagged with the worker id; a worker's output is drained
before its results are, so prints come before the map returns.
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from multiprocessing.connection import wait

from . import logs
from . import messages as m
from . import state as st
from .errors import SerializationError, describe
from .signals import Signal
from .usage import UsageSampler
from .worker import first_unpicklable

_PREFETCH_MAX_BYTES = 64 * 1024  # a queued batch larger than this waits for its worker


class ControlPipe:
    """Messages to the Boss from any thread; a byte on a pipe wakes its wait.

    Only the first message after a drain writes the byte: a thousand calls submitted in a
    row cost one system call and one wake-up, not a thousand. (A sender puts its message
    before it looks at `_armed`; the Boss reads the pipe, then clears `_armed`, then empties
    the queue: a message whose sender skipped the write is found by the drain under way, and
    a byte written after the clear is left for the next wait.)
    """

    def __init__(self):
        self._queue = queue.SimpleQueue()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)  # a full pipe already holds a wake-up: never block
        self._closed = False
        self._lock = threading.Lock()  # a send never writes to an fd number close() freed
        self._armed = False  # a wake-up byte is on its way to the Boss

    def fileno(self):
        return self._r

    def send(self, msg):
        self._queue.put(msg)
        if self._armed:
            return
        with self._lock:
            if self._closed:
                return  # the Boss is gone; whoever waits checks for that
            self._armed = True
            try:
                os.write(self._w, b"\0")
            except (BlockingIOError, OSError):
                pass  # a full pipe has its wake-up byte already

    def drain(self) -> list:
        try:
            os.read(self._r, 65536)
        except BlockingIOError:
            pass
        self._armed = False  # after the read: a byte written from now on wakes the next wait
        out = []
        while not self._queue.empty():  # the Boss is the one reader: no race
            out.append(self._queue.get_nowait())
        return out

    def close(self):
        """Free both fds (the Boss's last act): a pool must not cost its process two fds."""
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._r)
                os.close(self._w)


class Boss:
    """Runs a pool's state machine against its backend, in a thread of the caller."""

    def __init__(self, backend, state: st.BossState, make_setup, on_output, name="nbpar"):
        self.backend = backend
        self.state = state
        state.positions = backend.position
        self.make_setup = make_setup
        self.on_output = on_output
        self.control = ControlPipe()
        self.handles: dict = {}  # worker id -> WorkerHandle
        self._waitables: dict = {}  # waitable -> (kind, worker id)
        self._partial: dict = {}  # output fd -> bytes of an unfinished line
        self._deferred: dict = {}  # worker id -> batches waiting for the worker to be free
        self._exit_hooked: dict = {}  # worker id -> whether its setup had a worker_exit
        self._events: deque = deque()
        self._ready: set = set()  # what the last wait found ready
        self._outputs_ready = False  # any worker's stdout or stderr among them
        self._wakes: list = []  # hand-backs to callers, made at the end of a step
        # Messages to workers wait here until what woke the Boss is handled, then each
        # worker's go in one write: the two results a worker sends back to back bring it two
        # batches, and those cost one system call and one wake-up of the worker, not two.
        self._outbox: dict = {}  # WorkerHandle -> [messages], in order
        self._measure_rss = (state.scheduler.wants_rss or state.max_memory is not None) and (
            getattr(backend, "can_kill", False))  # (processes only: a thread has no memory)
        # CPU and memory of worker processes, put on the reports asked for (not on threads)
        self._usage = UsageSampler() if getattr(backend, "can_kill", False) else None
        self._fatal: BaseException | None = None
        self._gate = threading.Lock()
        self._accepting = True
        self.thread = threading.Thread(target=self._run, name=f"{name}-boss", daemon=True)
        # One epoll set for the Boss's whole life: a wake-up costs a select, not a rebuild.
        self._selector = selectors.DefaultSelector()
        self._watch(self.control, "control", None)
        for extra in backend.extra_waitables():
            self._watch(extra, "extra", None)

    # -- the caller's side
    def start(self):
        self.thread.start()

    def send(self, signal: Signal, for_job: int | None = None):
        self.control.send(signal if for_job is None else st.SignalReceived(signal,
                                                                           for_job=for_job))

    def submit(self, job: st.Job):
        with self._gate:  # never hand a map to a Boss that has stopped reading
            if not self._accepting:
                raise RuntimeError("the pool is closed: it takes no new work")
            self.control.send(("job", job))

    def cancel(self, job_id: int):
        self.control.send(("cancel", job_id))

    def reshare(self, prepared):
        self.control.send(("reshare", prepared))

    def consumed(self, job_id: int, n: int):
        self.control.send(("consumed", job_id, n))

    def report(self, timeout=5.0):
        if self.thread.is_alive():
            reply: Future = Future()
            self.control.send(("report", reply))
            deadline = time.monotonic() + timeout
            while self.thread.is_alive() and time.monotonic() < deadline:
                try:
                    return reply.result(timeout=0.05)
                except TimeoutError:
                    continue
            if reply.done():
                return reply.result()
        return self.state.report(None, time.monotonic())

    # -- the loop
    def _run(self):
        try:
            while not self.state.shut_down:
                deadline = self.state.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = self._selector.select(timeout)
                if not ready:
                    self._handle(st.Tick())
                    self._post()
                self._ready = {key.fileobj for key, _ in ready}
                self._outputs_ready = any(key.data[0] == "output" for key, _ in ready)
                for key, _ in ready:
                    if self._current(key):
                        self._on_ready(key.fileobj)
                        if self._outbox:
                            self._post()  # each worker's work goes out as soon as it is made
        except BaseException as exc:  # noqa: BLE001 - never a hang: fail what waits
            self._fatal = exc
            self._abort(exc)
        finally:
            self._cleanup()

    def _current(self, key) -> bool:
        """Whether a ready key still means what it meant when the wait returned. Handling an
        earlier key of the same wait can close an fd and reuse its number for a new worker;
        the old key (an output's EOF, say) must not be read as news of the new one (its death)."""
        return self._waitables.get(key.fileobj) is key.data

    def _on_ready(self, obj):
        kind, wid = self._waitables[obj]
        if kind == "control":
            for msg in self.control.drain():
                self._on_control(msg)
        elif kind == "channel":
            self._on_channel(wid)
        elif kind == "output":
            self._read_output(wid, obj)
        elif kind == "sentinel":
            self._on_gone(wid)
        elif self.backend.on_extra_ready(obj):
            self._forget(obj)

    def _on_control(self, msg):
        if isinstance(msg, (Signal, st.SignalReceived)):
            if self.state.listening:
                self._handle(msg if isinstance(msg, st.SignalReceived)
                             else st.SignalReceived(msg))
            return
        kind = msg[0]
        if kind == "job":
            self._handle(st.JobSubmitted(msg[1]))
        elif kind == "report":
            self._handle(st.SignalReceived(Signal.SEND_REPORT, msg[1]))
        elif kind == "consumed":
            self._handle(st.ResultsConsumed(msg[1], msg[2]))
        elif kind == "cancel":
            self._handle(st.CancelJob(msg[1]))
        elif kind == "reshare":
            self._handle(st.Reshare(msg[1]))

    def _on_channel(self, wid):
        """Every message the worker's pipe holds (a process pipe may bring several in one
        read: the ones after the first will not wake the wait)."""
        handle = self.handles[wid]
        channel = handle.channel
        try:
            msgs = [channel.recv()]
        except (EOFError, OSError):
            self._forget(channel)
            if handle.sentinel is None:
                self._on_gone(wid)
            return
        more = getattr(channel, "has_message", None)
        while more is not None and more():
            msgs.append(channel.recv())  # whole in the buffer: no read
        last = len(msgs) - 1
        for k, msg in enumerate(msgs):
            if k < last and type(msg) is m.Started and type(msgs[k + 1]) in (m.Done, m.Failed) \
                    and msgs[k + 1].batch_id == msg.batch_id:
                continue  # its end came with it: the clock it starts has nothing to time
            self._on_message(wid, handle, msg)
            if self.handles.get(wid) is not handle:
                return

    def _on_message(self, wid, handle, msg):
        decode = handle.channel.decode
        kind = type(msg)
        if kind is m.Done:
            self._drain_outputs(wid)
            self._send_deferred(wid)
            if self._measure_rss:
                self._measure(wid, handle)
            try:
                results = decode(msg.body)
            except Exception as exc:  # noqa: BLE001
                self._handle(st.BatchFailed(wid, msg.batch_id, [], SerializationError(
                    f"the results could not be unpickled in the caller: "
                    f"{type(exc).__name__}: {exc}"), msg.elapsed))
                return
            self._handle(st.BatchDone(wid, msg.batch_id, results, msg.elapsed))
        elif kind is m.Failed:
            self._drain_outputs(wid)
            self._send_deferred(wid)
            try:
                results = decode(msg.body)
            except Exception:  # noqa: BLE001 - the error itself matters more
                results = []
            self._handle(st.BatchFailed(wid, msg.batch_id, results, msg.error, msg.elapsed))
        elif kind is m.Log:
            self._drain_outputs(wid)  # prints made before the record come before it
            record = logs.handle_in_caller(msg.record)
            self._emit(wid, "log", f"{record.levelname} {record.name}: {record.getMessage()}")
        elif kind is m.Started:
            self._handle(st.BatchStarted(wid, msg.batch_id))
        elif kind is m.Ready:
            handle.pid = msg.pid
            if self._measure_rss:
                self._measure(wid, handle)
            self._handle(st.WorkerReady(wid, msg.pid))
        elif kind is m.InitFailed:
            self._drain_outputs(wid)
            self._handle(st.WorkerInitFailed(wid, msg.error))
        elif kind is m.Exited:
            self._drain_outputs(wid)
            try:
                result = decode(msg.body)
            except Exception:  # noqa: BLE001
                result = None
            self._handle(st.WorkerExited(wid, result, msg.error,
                                         self._exit_hooked.get(wid, True)))

    def _measure(self, wid, handle):
        """A worker's own memory, for a scheduler that budgets memory: its unique set size
        (RSS would count again the pages a forked worker shares with its parent)."""
        import psutil
        if handle.pid is None:  # not a process of this machine (psutil would measure ours)
            return
        try:
            rss = psutil.Process(handle.pid).memory_full_info().uss
        except psutil.Error:
            return
        self._events.append(st.WorkerMeasured(wid, rss))

    def _with_usage(self, report):
        """A report with its worker processes' CPU and memory (sampled, at most twice a
        second); a failed sample leaves the report as it is."""
        if self._usage is None:
            return report
        try:
            pids = [h.pid for h in self.handles.values() if h.pid is not None]
            return self._usage.annotate(report, pids)
        except Exception:  # noqa: BLE001 - figures are a nicety: never fail a report
            logging.getLogger("nbpar").debug("sampling the workers' CPU and memory failed",
                                             exc_info=True)
            return report

    def _on_gone(self, wid):
        handle = self.handles.pop(wid, None)
        if handle is None:
            return
        self._drain_outputs(wid, handle, final=True)
        exitcode = self.backend.exitcode(handle)
        position = self.backend.position(wid)
        for obj in [o for o, (_, w) in self._waitables.items() if w == wid]:
            self._forget(obj)
        self._deferred.pop(wid, None)
        self.backend.release(handle)
        self._handle(st.WorkerDied(wid, exitcode, position, handle.lost))

    def _watch(self, obj, kind, wid):
        entry = self._waitables[obj] = (kind, wid)  # a new tuple per registration: see _current
        self._selector.register(obj, selectors.EVENT_READ, entry)

    def _forget(self, obj):
        if self._waitables.pop(obj, None) is not None:
            try:
                self._selector.unregister(obj)
            except (KeyError, ValueError, OSError):
                pass

    # -- output
    def _read_output(self, wid, fd, final=False):
        handle = self.handles.get(wid)
        stream = handle.outputs.get(fd, "stdout") if handle else "stdout"
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._forget(fd)
                rest = self._partial.pop(fd, b"")
                if rest:
                    self._emit(wid, stream, rest)
                return
            data = self._partial.pop(fd, b"") + data
            *lines, tail = data.split(b"\n")
            if tail:
                self._partial[fd] = tail
            for line in lines:
                self._emit(wid, stream, line)

    def _drain_outputs(self, wid, handle=None, final=False):
        """Read what a worker printed before the message being handled. Its prints were
        written before that message, so their pipes are among the same wait's ready keys:
        only those are read (a read of an empty pipe is a system call for nothing)."""
        if not (final or self._outputs_ready):
            return  # (the usual case: nothing printed)
        handle = handle or self.handles.get(wid)
        if handle is None:
            return
        for fd in handle.outputs:
            if final or (fd in self._ready and fd in self._waitables):
                self._read_output(wid, fd, final)

    def _emit(self, wid, stream, raw):
        try:
            self.on_output(wid, stream, raw if isinstance(raw, str)
                           else raw.decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - a broken sink must not stop the Boss
            pass

    # -- events and instructions
    def _handle(self, event):
        self._events.append(event)
        while self._events:
            ev = self._events.popleft()
            for instr in self.state.handle(ev, time.monotonic()):
                self._execute(instr)
        # Wake the callers last: a woken caller needs the GIL, which it gets as soon as this
        # thread goes back to its wait -- not after the rest of the bookkeeping.
        if self._wakes:
            wakes, self._wakes = self._wakes, []
            for wake in wakes:
                wake()

    def _execute(self, instr):
        kind = type(instr)
        if kind is st.Dispatch:
            self._dispatch(instr)
        elif kind is st.Deliver:
            self._wakes.append(partial(instr.job.handle.deliver, instr.indices, instr.results))
        elif kind is st.FinishJob:
            self._wakes.append(partial(instr.job.handle.finish, instr.error, instr.report))
        elif kind is st.StartWorker:
            self._start_worker(instr.worker_id)
        elif kind is st.KillWorker:
            handle = self.handles.get(instr.worker_id)
            if handle is not None and self.backend.kill(handle):
                self._on_gone(instr.worker_id)
        elif kind is st.RetireWorker:
            self._send(instr.worker_id, m.Retire())
        elif kind is st.ForgetFunc:
            handle = self.handles.get(instr.worker_id)
            if handle is not None:
                handle.inherited.discard(instr.key)
            self._send(instr.worker_id, m.Forget(instr.key))
        elif kind is st.Reply:
            if not instr.reply.done():
                instr.reply.set_result(self._with_usage(instr.report))
        elif kind is st.ApplyShared:
            self.backend.apply(instr.prepared)
        elif kind is st.Shutdown:
            pass  # the loop ends on state.shut_down

    def _start_worker(self, wid):
        # the functions of the running maps: a forked worker inherits them as they are
        setup = self.make_setup(wid)
        funcs = {job.func_key: job.func for job in self.state.jobs if job.active}
        try:
            handle = self.backend.start(replace(setup, funcs=funcs or None))
        except Exception as exc:  # noqa: BLE001
            self._events.append(st.StartFailed(wid, exc))
            return
        self.handles[wid] = handle
        self._exit_hooked[wid] = self.make_setup.hooks[1] is not None  # (process workers
        # get their hooks in the pool's bundle, not in the setup)
        for extra in self.backend.extra_waitables():  # e.g. the link to a new fork server
            if extra not in self._waitables:
                self._watch(extra, "extra", None)
        self._watch(handle.channel, "channel", wid)
        if handle.sentinel is not None:
            self._watch(handle.sentinel, "sentinel", wid)
        for fd in handle.outputs:
            self._watch(fd, "output", wid)

    def _dispatch(self, instr):
        wid, batch = instr.worker_id, instr.batch
        handle = self.handles.get(wid)
        if handle is None:
            return
        job = batch.job
        ch = handle.channel
        try:
            if instr.send_func and job.func_key not in handle.inherited:
                self._send(wid, m.Func(job.func_key,
                                       job.handle.func_body(handle.encode_func or ch.encode)))
            body = ch.encode(batch.items)
        except Exception as exc:  # noqa: BLE001
            self._events.append(st.DispatchFailed(wid, batch.batch_id,
                                                  _unpicklable(exc, batch, ch.encode)))
            return
        job.handle.started()
        msg = m.Batch(batch.batch_id, job.func_key, job.star, body)
        if instr.queued and isinstance(body, bytes) and len(body) > _PREFETCH_MAX_BYTES:
            self._deferred.setdefault(wid, []).append(msg)
            return
        self._send(wid, msg)

    def _send_deferred(self, wid):
        for msg in self._deferred.pop(wid, ()):
            self._send(wid, msg)

    def _send(self, wid, msg):
        handle = self.handles.get(wid)
        if handle is None:
            return
        box = self._outbox.get(handle)
        if box is None:
            self._outbox[handle] = [msg]
        else:
            box.append(msg)

    def _post(self):
        """Send what the outbox holds, each worker's messages in order and, where its
        channel can, in one write; a worker gone (or replaced) since gets nothing."""
        outbox, self._outbox = self._outbox, {}
        for handle, msgs in outbox.items():
            if self.handles.get(handle.worker_id) is not handle:
                continue
            channel = handle.channel
            try:
                if len(msgs) == 1:
                    channel.send(msgs[0])
                elif hasattr(channel, "send_all"):
                    channel.send_all(msgs)
                else:
                    for msg in msgs:
                        channel.send(msg)
            except (OSError, ValueError):
                pass  # the worker is gone: its sentinel tells the rest

    # -- the end
    def _abort(self, exc):
        for job in list(self.state.jobs) + list(self.state.held):
            if job.handle is not None:
                job.handle.finish(RuntimeError(f"nbpar's Boss failed: {exc!r}"), None)
        self.state.jobs.clear()
        self.state.held.clear()

    def _cleanup(self):
        for wid, handle in list(self.handles.items()):
            self.backend.kill(handle)
            if handle.sentinel is not None:
                wait([handle.sentinel], 5)
            self.backend.release(handle)
        self.handles.clear()
        with self._gate:
            self._accepting = False
        for msg in self.control.drain():  # nobody may wait forever on a report
            if isinstance(msg, tuple) and msg[0] == "report" and not msg[1].done():
                msg[1].set_result(self.state.report(None, time.monotonic()))
            elif isinstance(msg, tuple) and msg[0] == "job":
                msg[1].handle.finish(RuntimeError("the pool is closed: it takes no new work"),
                                     None)
        self.backend.close()
        self._selector.close()
        self.control.close()


def _unpicklable(exc, batch, encode):
    """Name the item (and its type) that would not pickle."""
    if isinstance(exc, SerializationError):
        return exc
    k, why = first_unpicklable(batch.items) if encode is not None else (0, str(exc))
    item = batch.items[k]
    err = SerializationError(
        f"item {describe(item)} (index {batch.indices[k]}, a {type(item).__name__}) cannot be "
        f"pickled to be sent to a worker: {why}")
    err.item, err.index = item, batch.indices[k]
    return err

"""The Boss: one thread per pool, the one owner of pending work, running workers and reports.

    caller / widget / magic ──(control pipe: Signal, new maps, report requests)──┐
                                                                                 ▼
    worker pipes (results) ─┐                                         ┌──── Boss thread
    worker sentinels (death)├── one epoll set, for the Boss's life ───┤  events → BossState
    worker stdout / stderr ─┘     (timeout = nearest task deadline)   └──── instructions out

The thread blocks in a single wait on everything that can happen; it never polls. What it
hears becomes events for the pure state machine (state.py): a caller's message on the control
pipe is an event already (events.py: a new map, a signal, a report request, ...), and each
kind of worker message has its method that makes one (`_FROM_WORKER`; a result,
`_done_event`). What the machine answers -- start, dispatch, kill, retire, deliver, finish --
is carried out here, each kind of instruction by its method (`_INSTRUCTIONS`). Worker output
is read here, split into lines and handed on tagged with the worker id; a worker's output is
drained before its results are, so prints come before the map returns.

The machine keeps its story (story.py): the last steps, each an event and the instructions it
gave, read by `debug_log()`. With the logger "nbpar.boss" at DEBUG, each step is logged too
(the level is looked at once per wake-up, so a disabled logger costs nothing per task).
"""

from __future__ import annotations

import logging
import os
import queue
import selectors
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from functools import partial
from multiprocessing.connection import wait
from typing import Any, Literal

from . import events as ev
from . import logs
from . import messages as m
from . import state as st
from . import story
from .backends import Backend, WorkerHandle
from .errors import SerializationError, describe
from .reports import Report
from .signals import Signal
from .usage import UsageSampler
from .worker import first_unpicklable

_log = logging.getLogger("nbpar.boss")

# what a waitable the Boss watches is: its control pipe, a worker's channel, stdout or stderr
# (output), or death (sentinel), or something of the backend's (a fork server's link)
WaitKind = Literal["control", "channel", "output", "sentinel", "extra"]


class ControlPipe:
    """Messages to the Boss from any thread; a byte on a pipe wakes its wait.

    Only the first message after a drain writes the byte: a thousand calls submitted in a
    row cost one system call and one wake-up, not a thousand. (A sender puts its message
    before it looks at `_armed`; the Boss reads the pipe, then clears `_armed`, then empties
    the queue: a message whose sender skipped the write is found by the drain under way, and
    a byte written after the clear is left for the next wait.)
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[ev.Event] = queue.SimpleQueue()
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)  # a full pipe already holds a wake-up: never block
        self._closed = False
        self._lock = threading.Lock()  # a send never writes to an fd number close() freed
        self._armed = False  # a wake-up byte is on its way to the Boss

    def fileno(self) -> int:
        return self._r

    def send(self, event: ev.Event) -> None:
        self._queue.put(event)
        if self._armed:
            return
        with self._lock:
            if self._closed:
                return  # the Boss is gone; whoever waits checks for that
            self._armed = True
            try:
                os.write(self._w, b"\0")
            except BlockingIOError:
                pass  # a full pipe has its wake-up byte already
            except OSError:
                _log.debug("the control pipe's wake-up byte was not written", exc_info=True)

    def drain(self) -> list[ev.Event]:
        try:
            os.read(self._r, 65536)
        except BlockingIOError:
            pass  # no byte: a message whose sender saw the pipe armed
        self._armed = False  # after the read: a byte written from now on wakes the next wait
        out = []
        while not self._queue.empty():  # the Boss is the one reader: no race
            out.append(self._queue.get_nowait())
        return out

    def close(self) -> None:
        """Free both fds (the Boss's last act): a pool must not cost its process two fds."""
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._r)
                os.close(self._w)


class BossThread:
    """Runs a pool's state machine against its backend, in a thread of the caller (the
    pool's Boss; `nbpar.Boss` is classic.py's instruction-level API, built on a pool)."""

    def __init__(self, backend: Backend, state: st.BossState, make_setup: Any,
                 on_output: Callable[[int, str, str], object], name: str = "nbpar") -> None:
        self.backend = backend
        self.state = state
        state.positions = backend.position
        self.make_setup = make_setup
        self.on_output = on_output
        self.control = ControlPipe()
        self.handles: dict[int, WorkerHandle] = {}  # worker id -> its handle
        self._waitables: dict[Any, tuple[WaitKind, int | None]] = {}  # -> (kind, worker id)
        self._partial: dict[int, bytes] = {}  # output fd -> bytes of an unfinished line
        self._held: dict[int, m.Batch] = {}  # worker id -> the encoded batch kept back for
        # it, as a Dispatch asked (hold_over), until the machine says SendHeld
        self._output_fds: set[Any] = set()  # the watched stdout and stderr pipes
        self._exit_hooked: dict[int, bool] = {}  # worker id -> its setup had a worker_exit
        self._events: deque[ev.Event] = deque()
        self._gathered: list[ev.Event] = []  # results and calls of this wake-up, not yet
        # taken (_take_gathered)
        self._ready: set[Any] = set()  # what the last wait found ready
        self._outputs_ready = False  # any worker's stdout or stderr among them
        self._wakes: list[Callable[[], object]] = []  # hand-backs to callers, made at the
        # end of a step
        self._debug = False  # "nbpar.boss" logs at DEBUG (looked at once per wake-up)
        # Messages to workers wait here until what woke the Boss is handled, then each
        # worker's go in one write: the two results a worker sends back to back bring it two
        # batches, and those cost one system call and one wake-up of the worker, not two.
        self._outbox: dict[WorkerHandle, list[Any]] = {}  # -> its messages, in order
        self._measure_rss = (state.scheduler.wants_rss or state.max_memory is not None) and (
            backend.can_kill)  # (processes only: a thread has no memory)
        # CPU and memory of worker processes, put on the reports asked for (not on threads)
        self._usage = UsageSampler() if backend.can_kill else None
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
    def start(self) -> None:
        self.thread.start()

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def in_boss_thread(self) -> bool:
        return self.thread is threading.current_thread()

    def send(self, signal: Signal, for_job: int | None = None) -> None:
        self.control.send(ev.SignalReceived(signal, for_job=for_job))

    def submit(self, job: st.Job) -> None:
        with self._gate:  # never hand a map to a Boss that has stopped reading
            if not self._accepting:
                raise RuntimeError("the pool is closed: it takes no new work")
            self.control.send(ev.JobSubmitted(job))

    def cancel(self, job_id: int) -> None:
        self.control.send(ev.CancelJob(job_id))

    def reshare(self, prepared: Any) -> None:
        self.control.send(ev.Reshare(prepared))

    def consumed(self, job_id: int, n: int) -> None:
        self.control.send(ev.ResultsConsumed(job_id, n))

    def report(self, timeout: float = 5.0) -> Report:
        if self.thread.is_alive():
            reply: Future[Report] = Future()
            self.control.send(ev.ReportRequested(reply))
            deadline = time.monotonic() + timeout
            while self.thread.is_alive() and time.monotonic() < deadline:
                try:
                    return reply.result(timeout=0.05)
                except TimeoutError:
                    continue
            if reply.done():
                return reply.result()
        return self.state.report(None, time.monotonic())

    def take_exit_error(self) -> BaseException | None:
        """What a worker_exit raised after the last map, handed over once; None while the
        Boss runs (its state is its own until its thread has ended)."""
        if self.thread.is_alive():
            return None
        error, self.state.exit_error = self.state.exit_error, None
        return error

    def debug_log(self) -> list[story.StoryEntry]:
        """The state machine's last steps, oldest first (see story.py). Read from any thread,
        without asking the Boss: a deque's copy is one C call, whole under the GIL, so the
        story can be read while the Boss is stuck -- when it is most wanted."""
        return story.entries(self.state.story.copy())

    # -- the loop
    def _run(self) -> None:
        try:
            while not self.state.shut_down:
                deadline = self.state.next_deadline()
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = self._selector.select(timeout)
                self._debug = _log.isEnabledFor(logging.DEBUG)
                if not ready:
                    self._handle(ev.Tick())
                    self._post()
                self._ready = found = {key.fileobj for key, _ in ready}
                self._outputs_ready = not self._output_fds.isdisjoint(found)
                waitables = self._waitables
                for key, _ in ready:
                    entry = waitables.get(key.fileobj)  # (_current(key), inline)
                    if entry is None or entry is not key.data:
                        continue
                    kind, wid = entry
                    if kind == "channel" and wid is not None:  # (the usual key: _on_ready's
                        self._on_channel(wid)  # branch for it, inline; results gathered)
                    else:
                        self._take_gathered()  # what came before it first
                        self._on_ready(key.fileobj)
                        if self._outbox:
                            self._post()
                self._take_gathered()  # every worker's results of this wake-up: one step
                if self._outbox:
                    self._post()
        except BaseException as exc:  # noqa: BLE001 - never a hang: fail what waits
            _log.debug("the Boss failed (its last steps: debug_log())", exc_info=True)
            self._fatal = exc
            self._abort(exc)
        finally:
            self._cleanup()

    def _current(self, key: selectors.SelectorKey) -> bool:
        """Whether a ready key still means what it meant when the wait returned. Handling an
        earlier key of the same wait can close an fd and reuse its number for a new worker;
        the old key (an output's EOF, say) must not be read as news of the new one (its death)."""
        return self._waitables.get(key.fileobj) is key.data

    def _on_ready(self, obj: Any) -> None:
        kind, wid = self._waitables[obj]
        if kind == "control":
            for event in self.control.drain():
                if type(event) is ev.JobSubmitted:  # a burst of calls: taken together, with
                    self._gathered.append(event)  # the wake-up's results
                    continue
                self._take_gathered()
                self._on_control(event)
        elif wid is None:  # "extra"
            if self.backend.on_extra_ready(obj):
                self._forget(obj)
        elif kind == "channel":
            self._on_channel(wid)
        elif kind == "output":
            self._read_output(wid, obj)
        else:  # "sentinel"
            self._on_gone(wid)

    def _on_control(self, event: ev.Event) -> None:
        """A caller's event, for the state machine as it is; signals only while it listens
        (after STOP_LISTENING, report requests and the rest are still taken)."""
        if type(event) is ev.SignalReceived and not self.state.listening:
            return
        self._handle(event)

    def _on_channel(self, wid: int) -> None:
        """Every message the worker's pipe holds (a process pipe may bring several in one
        read: the ones after the first will not wake the wait)."""
        handle = self.handles[wid]
        channel = handle.channel
        recv_all: Callable[[], list[Any]] | None = getattr(channel, "recv_all", None)
        try:
            msgs = recv_all() if recv_all is not None else [channel.recv()]
        except (EOFError, OSError):
            self._take_gathered()
            self._forget(channel)
            if handle.sentinel is None:
                self._on_gone(wid)
            return
        if recv_all is None:
            more: Callable[[], bool] | None = getattr(channel, "has_message", None)
            while more is not None and more():
                msgs.append(channel.recv())  # whole in the buffer: no read
        last = len(msgs) - 1
        for k, msg in enumerate(msgs):
            kind = type(msg)
            if kind is m.Done:  # (the usual message: no table to look in)
                event = self._done_event(wid, handle, msg)
                if type(event) is ev.BatchDone:
                    self._gathered.append(event)  # taken with the wake-up's other results
                    continue
                self._take_gathered()
                if self.handles.get(wid) is not handle:
                    return
                self._handle(event)
            else:
                self._take_gathered()  # (every other message in the order it came)
                if self.handles.get(wid) is not handle:
                    return
                if k < last and kind is m.Started and type(msgs[k + 1]) in (m.Done, m.Failed) \
                        and msgs[k + 1].batch_id == msg.batch_id:
                    continue  # its end came with it: the clock it starts has nothing to time
                try:
                    on = _FROM_WORKER[kind]
                except KeyError:
                    _log.debug("worker %s sent %r, which the Boss does not know: dropped", wid,
                               msg)
                    continue
                on(self, wid, handle, msg)
            if self.handles.get(wid) is not handle:
                return

    def _take_gathered(self) -> None:
        """Hand the results and calls gathered so far to the state machine, as one step
        (several workers' results at 32 workers and more, a burst of submitted calls: work
        is handed out once for all of them)."""
        if self._gathered:
            events, self._gathered = self._gathered, []
            self._handle_many(events)

    # -- what a worker says, each kind of message to its event (see _FROM_WORKER; a Done,
    # the usual message, is turned into its event by _on_channel itself)
    def _done_event(self, wid: int, handle: WorkerHandle,
                    msg: m.Done) -> ev.BatchDone | ev.BatchFailed:
        if self._outputs_ready:  # (what _drain_outputs looks at first: a call per task saved)
            self._drain_outputs(wid)
        if self._measure_rss:
            self._measure(wid, handle)
        try:
            results = handle.channel.decode(msg.body)
        except Exception as exc:  # noqa: BLE001
            return ev.BatchFailed(wid, msg.batch_id, [], SerializationError(
                f"the results could not be unpickled in the caller: "
                f"{type(exc).__name__}: {exc}"), msg.elapsed)
        return ev.BatchDone(wid, msg.batch_id, results, msg.elapsed)

    def _on_failed(self, wid: int, handle: WorkerHandle, msg: m.Failed) -> None:
        self._drain_outputs(wid)
        try:
            results = handle.channel.decode(msg.body)
        except Exception:  # noqa: BLE001 - the error itself matters more
            _log.debug("the results before a failed task of worker %s could not be "
                       "unpickled: dropped", wid, exc_info=True)
            results = []
        self._handle(ev.BatchFailed(wid, msg.batch_id, results, msg.error, msg.elapsed))

    def _on_log(self, wid: int, handle: WorkerHandle, msg: m.Log) -> None:
        self._drain_outputs(wid)  # prints made before the record come before it
        record = logs.handle_in_caller(msg.record)
        self._emit(wid, "log", f"{record.levelname} {record.name}: {record.getMessage()}")

    def _on_started(self, wid: int, handle: WorkerHandle, msg: m.Started) -> None:
        self._handle(ev.BatchStarted(wid, msg.batch_id))

    def _on_worker_ready(self, wid: int, handle: WorkerHandle, msg: m.Ready) -> None:
        handle.pid = msg.pid
        if self._measure_rss:
            self._measure(wid, handle)
        self._handle(ev.WorkerReady(wid, msg.pid))

    def _on_init_failed(self, wid: int, handle: WorkerHandle, msg: m.InitFailed) -> None:
        self._drain_outputs(wid)
        self._handle(ev.WorkerInitFailed(wid, msg.error))

    def _on_exited(self, wid: int, handle: WorkerHandle, msg: m.Exited) -> None:
        self._drain_outputs(wid)
        try:
            result = handle.channel.decode(msg.body)
        except Exception:  # noqa: BLE001
            _log.debug("worker_exit's result on worker %s could not be unpickled: None "
                       "instead", wid, exc_info=True)
            result = None
        self._handle(ev.WorkerExited(wid, result, msg.error, self._exit_hooked.get(wid, True)))

    def _on_no_workers(self, wid: int, handle: WorkerHandle, msg: m.NoWorkers) -> None:
        self._handle(ev.ClusterEmpty(wid, msg.since, msg.timeout, msg.cluster, msg.setting))

    def _on_workers_back(self, wid: int, handle: WorkerHandle, msg: m.WorkersBack) -> None:
        self._handle(ev.ClusterBack(wid))

    def _measure(self, wid: int, handle: WorkerHandle) -> None:
        """A worker's own memory, for a scheduler that budgets memory: its unique set size
        (RSS would count again the pages a forked worker shares with its parent)."""
        import psutil
        if handle.pid is None:  # not a process of this machine (psutil would measure ours)
            return
        try:
            rss = psutil.Process(handle.pid).memory_full_info().uss
        except psutil.Error:
            _log.debug("worker %s's memory could not be measured", wid, exc_info=True)
            return
        self._events.append(ev.WorkerMeasured(wid, rss))

    def _with_usage(self, report: Report) -> Report:
        """A report with its worker processes' CPU and memory (sampled, at most twice a
        second); a failed sample leaves the report as it is."""
        if self._usage is None:
            return report
        try:
            pids = [h.pid for h in self.handles.values() if h.pid is not None]
            annotated: Report = self._usage.annotate(report, pids)
            return annotated
        except Exception:  # noqa: BLE001 - figures are a nicety: never fail a report
            _log.debug("sampling the workers' CPU and memory failed", exc_info=True)
            return report

    def _on_gone(self, wid: int) -> None:
        handle = self.handles.pop(wid, None)
        if handle is None:
            return
        self._drain_outputs(wid, handle, final=True)
        exitcode = self.backend.exitcode(handle)
        position = self.backend.position(wid)
        for obj in [o for o, (_, w) in self._waitables.items() if w == wid]:
            self._forget(obj)
        self._held.pop(wid, None)
        self.backend.release(handle)
        self._handle(ev.WorkerDied(wid, exitcode, position, handle.lost))

    def _watch(self, obj: Any, kind: WaitKind, wid: int | None) -> None:
        entry = self._waitables[obj] = (kind, wid)  # a new tuple per registration: see _current
        self._selector.register(obj, selectors.EVENT_READ, entry)
        if kind == "output":
            self._output_fds.add(obj)

    def _forget(self, obj: Any) -> None:
        self._output_fds.discard(obj)
        if self._waitables.pop(obj, None) is not None:
            try:
                self._selector.unregister(obj)
            except (KeyError, ValueError, OSError):  # closed already: nothing left to watch
                _log.debug("unwatching %r failed", obj, exc_info=True)

    # -- output
    def _read_output(self, wid: int, fd: int, final: bool = False) -> None:
        handle = self.handles.get(wid)
        stream = handle.outputs.get(fd, "stdout") if handle else "stdout"
        while True:
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                _log.debug("reading worker %s's output failed: taken as its end", wid,
                           exc_info=True)
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

    def _drain_outputs(self, wid: int, handle: WorkerHandle | None = None,
                       final: bool = False) -> None:
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

    def _emit(self, wid: int, stream: str, raw: str | bytes) -> None:
        try:
            self.on_output(wid, stream, raw if isinstance(raw, str)
                           else raw.decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - a broken sink must not stop the Boss
            _log.debug("the output sink failed on a line of worker %s", wid, exc_info=True)

    # -- events and instructions
    def _handle(self, event: ev.Event) -> None:
        """Feed an event (and those its instructions raise) to the state machine; carry out
        what it answers, each kind of instruction by its method (see _INSTRUCTIONS)."""
        self._events.append(event)
        self._take_events()

    def _handle_many(self, events: list[ev.Event]) -> None:
        """Events that came together, fed as one step (`BossState.handle_many`), then what
        their instructions raise, as `_handle` does."""
        if len(events) == 1:
            self._handle(events[0])
            return
        for instr in self.state.handle_many(events, time.monotonic()):
            _INSTRUCTIONS[type(instr)](self, instr)
        if self._debug:
            told = sum(1 for e in events if e.told)
            steps = list(self.state.story)[-told:] if told else []
            for step in steps:
                _log.debug("%s", story.text_of_step(step))
        self._take_events()

    def _take_events(self) -> None:
        while self._events:
            taken = self._events.popleft()
            for instr in self.state.handle(taken, time.monotonic()):
                _INSTRUCTIONS[type(instr)](self, instr)
            if self._debug and taken.told:
                _log.debug("%s", story.text_of_step(self.state.story[-1]))
        # Wake the callers last: a woken caller needs the GIL, which it gets as soon as this
        # thread goes back to its wait -- not after the rest of the bookkeeping.
        if self._wakes:
            wakes, self._wakes = self._wakes, []
            for wake in wakes:
                wake()

    def _deliver(self, instr: ev.Deliver) -> None:
        self._wakes.append(partial(instr.job.caller.deliver, instr.indices, instr.results))

    def _finish_job(self, instr: ev.FinishJob) -> None:
        self._wakes.append(partial(instr.job.caller.finish, instr.error, instr.report))

    def _kill(self, instr: ev.KillWorker) -> None:
        handle = self.handles.get(instr.worker_id)
        if handle is not None and self.backend.kill(handle):
            self._on_gone(instr.worker_id)

    def _retire(self, instr: ev.RetireWorker) -> None:
        self._send(instr.worker_id, m.Retire())

    def _forget_func(self, instr: ev.ForgetFunc) -> None:
        handle = self.handles.get(instr.worker_id)
        if handle is not None:
            handle.inherited.discard(instr.key)
        self._send(instr.worker_id, m.Forget(instr.key))

    def _drop_batches(self, instr: ev.DropBatches) -> None:
        self._send(instr.worker_id, m.Drop(instr.batch_ids))

    def _reply(self, instr: ev.Reply) -> None:
        if instr.reply is not None and not instr.reply.done():
            instr.reply.set_result(self._with_usage(instr.report))

    def _apply_shared(self, instr: ev.ApplyShared) -> None:
        self.backend.apply(instr.prepared)

    def _shut_down(self, instr: ev.Shutdown) -> None:
        """Nothing to do: the loop ends on state.shut_down."""

    def _start_worker(self, instr: ev.StartWorker) -> None:
        wid = instr.worker_id
        # the functions of the running maps: a forked worker inherits them as they are
        setup = self.make_setup(wid)
        funcs = {job.func_key: job.func for job in self.state.jobs if job.active}
        try:
            handle = self.backend.start(replace(setup, funcs=funcs or None))
        except Exception as exc:  # noqa: BLE001
            self._events.append(ev.StartFailed(wid, exc))
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

    def _dispatch(self, instr: ev.Dispatch) -> None:
        wid, batch = instr.worker_id, instr.batch
        handle = self.handles.get(wid)
        if handle is None:
            return
        job = batch.job
        ch = handle.channel
        try:
            if instr.send_func and job.func_key not in handle.inherited:
                self._send(wid, m.Func(job.func_key,
                                       job.caller.func_body(handle.encode_func or ch.encode)))
            body = ch.encode(batch.items)
        except Exception as exc:  # noqa: BLE001
            self._events.append(ev.DispatchFailed(wid, batch.batch_id,
                                                  _unpicklable(exc, batch, ch.encode)))
            return
        job.caller.started()
        msg = m.Batch(batch.batch_id, job.func_key, job.star, body)
        hold_over = instr.hold_over
        if hold_over is not None and isinstance(body, bytes) and len(body) > hold_over:
            self._held[wid] = msg  # as asked: the machine says when to send it
            self._events.append(ev.DispatchHeld(wid, batch.batch_id, len(body)))
            return
        self._send(wid, msg)

    def _send_held(self, instr: ev.SendHeld) -> None:
        msg = self._held.get(instr.worker_id)
        if msg is not None and msg.batch_id == instr.batch_id:
            del self._held[instr.worker_id]
            self._send(instr.worker_id, msg)

    def _send(self, wid: int, msg: Any) -> None:
        handle = self.handles.get(wid)
        if handle is None:
            return
        box = self._outbox.get(handle)
        if box is None:
            self._outbox[handle] = [msg]
        else:
            box.append(msg)

    def _post(self) -> None:
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
            except (OSError, ValueError):  # the worker is gone: its sentinel tells the rest
                _log.debug("sending to worker %s failed", handle.worker_id, exc_info=True)

    # -- the end
    def _abort(self, exc: BaseException) -> None:
        for job in list(self.state.jobs) + list(self.state.held):
            if job.handle is not None:
                job.caller.finish(RuntimeError(f"nbpar's Boss failed: {exc!r}"), None)
        self.state.jobs.clear()
        self.state.held.clear()

    def _cleanup(self) -> None:
        for handle in list(self.handles.values()):
            self.backend.kill(handle)
            if handle.sentinel is not None:
                wait([handle.sentinel], 5)
            self.backend.release(handle)
        self.handles.clear()
        with self._gate:
            self._accepting = False
        for event in self.control.drain():  # nobody may wait forever on a report
            if type(event) is ev.ReportRequested and not event.reply.done():
                event.reply.set_result(self.state.report(None, time.monotonic()))
            elif type(event) is ev.JobSubmitted:
                event.job.caller.finish(
                    RuntimeError("the pool is closed: it takes no new work"), None)
        self.backend.close()
        self._selector.close()
        self.control.close()


def _unpicklable(exc: Exception, batch: st.TaskBatch,
                 encode: Callable[[Any], Any] | None) -> SerializationError:
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


# each kind of worker message but Done (_done_event) -> the Boss's method that turns it into
# an event
_FROM_WORKER: dict[type, Callable[[BossThread, int, WorkerHandle, Any], None]] = {
    m.Failed: BossThread._on_failed,
    m.Log: BossThread._on_log,
    m.Started: BossThread._on_started,
    m.Ready: BossThread._on_worker_ready,
    m.InitFailed: BossThread._on_init_failed,
    m.Exited: BossThread._on_exited,
    m.NoWorkers: BossThread._on_no_workers,
    m.WorkersBack: BossThread._on_workers_back,
}

# each kind of instruction -> the Boss's method that carries it out
_INSTRUCTIONS: dict[type[ev.Instruction], Callable[[BossThread, Any], None]] = {
    ev.Dispatch: BossThread._dispatch,
    ev.SendHeld: BossThread._send_held,
    ev.Deliver: BossThread._deliver,
    ev.FinishJob: BossThread._finish_job,
    ev.StartWorker: BossThread._start_worker,
    ev.KillWorker: BossThread._kill,
    ev.RetireWorker: BossThread._retire,
    ev.ForgetFunc: BossThread._forget_func,
    ev.DropBatches: BossThread._drop_batches,
    ev.Reply: BossThread._reply,
    ev.ApplyShared: BossThread._apply_shared,
    ev.Shutdown: BossThread._shut_down,
}

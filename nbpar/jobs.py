"""The caller's side of a map: a handle the Boss fills, and the futures built on it.

The Boss thread calls `deliver`, `started` and `finish`; the caller's thread waits on the
handle. Nothing here decides anything: that is the Boss's job.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from functools import partial
from typing import TYPE_CHECKING, Any

from .errors import SerializationError, describe

if TYPE_CHECKING:
    from .reports import Report

_log = logging.getLogger(__name__)

_END = object()

STOP_WAIT = 5.0  # seconds a caller waits for STOP_RIGHTNOW to take effect


class FunctionKeys:
    """Gives each function object a key and pickles it once per pool, so a thousand
    `submit(f, x)` calls send `f` to each worker once, not a thousand times.

    A function is held by a weak reference only: once the caller and its calls let go of it
    (a bound method of a big object, a lambda made per call), it is collected, its entry
    dropped. A callable that takes no weak reference gets a fresh key per call, pickled
    each time, rather than being kept alive here.
    """

    def __init__(self, size=256):
        # id(func) -> [weakref(func), key, (encode, body)]
        self._entries: OrderedDict = OrderedDict()
        self._keys = itertools.count()
        self._lock = threading.Lock()
        self._size = size
        self._dead: list = []  # ids whose function was collected (appended by weakref callbacks)

    def key(self, func, check=None) -> int:
        """The function's key; `check(func)` runs (and may raise) only on first sight."""
        with self._lock:
            self._purge()
            entry = self._entries.get(id(func))
            if entry is not None and entry[0]() is func:
                self._entries.move_to_end(id(func))
                return entry[1]
            if check is not None:
                check(func)
            key = next(self._keys)  # never reused: a worker cannot confuse two functions
            try:
                ref = weakref.ref(func, partial(_collected, self._dead, id(func)))
            except TypeError:
                return key  # no weak reference: not remembered (see above)
            self._entries[id(func)] = [ref, key, None]
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
            return key

    def _purge(self):
        while self._dead:
            ident = self._dead.pop()
            entry = self._entries.get(ident)
            if entry is not None and entry[0]() is None:
                del self._entries[ident]

    def body(self, func, encode):
        """The pickled function (in the Boss thread, when a worker first needs it). A body
        made by another `encode` (the shared objects changed: their references with them)
        is made again."""
        with self._lock:
            entry = self._entries.get(id(func))
            cached = entry[2] if entry is not None and entry[0]() is func else None
        if cached is not None and cached[0] == encode:
            return cached[1]
        try:
            body = encode(func)
        except Exception as exc:
            raise SerializationError(
                f"func ({describe(func)}) cannot be pickled to be sent to the workers: "
                f"{type(exc).__name__}: {exc}") from exc
        with self._lock:
            entry = self._entries.get(id(func))
            if entry is not None and entry[0]() is func:
                entry[2] = (encode, body)
        return body


def _collected(dead, ident, _ref):
    dead.append(ident)  # list.append is atomic: safe from a collection in any thread


# Guards each latch's Event and each handle's asyncio waiters, for all of them: held for a
# few instructions, rarely by two threads at once; one lock per call would be two more
# objects for the garbage collector to walk while thousands of calls are in flight.
_GUARD = threading.Lock()


class _Latch:
    """Opens once; any thread may wait for it. The Event behind it is made only when a thread
    waits before it opens: a single call (nobody waits on its handle) never pays for one."""

    __slots__ = ("_event", "is_open")

    def __init__(self):
        self._event = None
        self.is_open = False

    def open(self):
        with _GUARD:
            self.is_open = True
            event = self._event
        if event is not None:
            event.set()

    def wait(self, timeout=None) -> bool:
        if self.is_open:
            return True
        with _GUARD:
            if self.is_open:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)


class JobHandle:
    """One map seen from the caller: completion, streamed results, the final report."""

    def __init__(self, func, streaming: bool, functions: FunctionKeys | None = None):
        self.func = func
        self.streaming = streaming
        self.error: BaseException | None = None
        self.report: Report | None = None
        self._done = _Latch()
        self._stream: queue.SimpleQueue | None = queue.SimpleQueue() if streaming else None
        self._functions = functions or FunctionKeys(1)
        self._async_waiters: list | None = None  # (loop, asyncio.Future) woken by deliver /
        # finish (made by the first awaiter: a call nobody awaits keeps one object less)

    # -- called by the Boss thread
    def func_body(self, encode: Callable[[Any], bytes]) -> bytes:
        return self._functions.body(self.func, encode)

    def started(self) -> None:
        pass

    def deliver(self, indices: Sequence[int], results: list[Any]) -> None:
        assert self._stream is not None, "only a streaming map's results are delivered"
        self._stream.put((indices, results))
        self._wake_async()

    def finish(self, error: BaseException | None, report: Report | None) -> None:
        self.error = error
        self.report = report
        self.func = None  # a finished call holds nothing of the caller's (no stale reference)
        self._done.open()
        if self._stream is not None:
            self._stream.put(_END)
        self._wake_async()

    # -- called by the caller
    @property
    def done(self) -> bool:
        return self._done.is_open

    def wait(self, timeout=None) -> bool:
        return self._done.wait(timeout)

    def next_chunk(self):
        """A delivered (indices, results) pair if one is waiting, else None; raises the map's
        error at the end (the non-blocking form of `chunks`, for the async iterator)."""
        try:
            chunk = self._stream.get_nowait()
        except queue.Empty:
            return None
        if chunk is _END:
            self._stream.put(_END)  # stays ended for a later look
            if self.error is not None:
                raise self.error
            raise StopAsyncIteration
        return chunk

    # -- awaiting from an asyncio loop (map_async, the notebook layer)
    def changed(self):
        """A future of the running asyncio loop, set at the next delivery or at the end.

        Take it before looking at the handle, then await it only if there was nothing to
        see: the Boss thread sets it with `call_soon_threadsafe`, so no wake-up is lost and
        the loop stays free (widget clicks are handled) while the map runs.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with _GUARD:
            if self._async_waiters is None:
                self._async_waiters = []
            self._async_waiters.append((loop, future))
        return future

    def _wake_async(self):
        if not self._async_waiters:  # the common case: nobody awaits (a waiter taken later
            return                   # looks at the handle after this delivery was queued)
        with _GUARD:
            waiters, self._async_waiters = self._async_waiters or [], None
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_set_if_pending, future)
            except RuntimeError:  # that loop is closed: nobody waits there any more
                _log.debug("an awaiting loop closed before the map's news", exc_info=True)

    async def achunks(self):
        """`chunks` for asyncio: awaits each delivery without blocking the event loop."""
        while True:
            try:
                chunk = self.next_chunk()
                if chunk is None:
                    changed = self.changed()  # taken before the second look: no lost wake-up
                    chunk = self.next_chunk()
                    if chunk is None:
                        await changed
                        continue
            except StopAsyncIteration:
                return
            yield chunk

    def next_chunk_until(self, deadline=None):
        """The next delivered (indices, results) pair, waiting until `deadline`
        (time.monotonic(); None: for ever) and raising TimeoutError when it passes; at the
        end None, or the map's error -- then and on every later call."""
        try:
            if deadline is None:
                chunk = self._stream.get()
            else:
                chunk = self._stream.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("the map's next result was not ready in time") from None
        if chunk is _END:
            self._stream.put(_END)  # stays ended for a later look
            if self.error is not None:
                raise self.error
            return None
        return chunk

    def chunks(self, deadline=None):
        """Delivered (indices, results) pairs as they come; raises the map's error at the end,
        and TimeoutError if `deadline` (time.monotonic()) passes before the next one."""
        while True:
            if deadline is None:
                chunk = self._stream.get()
            else:
                try:
                    chunk = self._stream.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    raise TimeoutError("the map's next result was not ready in time") from None
            if chunk is _END:
                if self.error is not None:
                    raise self.error
                return
            yield chunk


def _set_if_pending(future):
    if not future.done():
        future.set_result(None)


class FutureHandle(JobHandle):
    """A single call (submit / apply_async) whose result lands in a concurrent.futures.Future."""

    def __init__(self, func, future: Future, functions: FunctionKeys | None = None):
        super().__init__(func, streaming=False, functions=functions)  # the future streams
        self.future = future
        self._running = False

    def started(self) -> None:
        if not self._running:
            self._running = True
            self.future.set_running_or_notify_cancel()

    def deliver(self, indices: Sequence[int], results: list[Any]) -> None:
        if not self.future.done():
            self.future.set_result(results[0])

    def finish(self, error: BaseException | None, report: Report | None) -> None:
        super().finish(error, report)
        if self.future.done():
            return
        if error is not None:
            if not self._running and not self.future.set_running_or_notify_cancel():
                return  # cancelled before it ran
            self.future.set_exception(error)
        elif not self._running:
            self.future.cancel()


class CollectHandle(JobHandle):
    """A map whose ordered results land in a Future as one list (multiprocessing's
    map_async): delivered results are placed by index, the list handed over at the end."""

    def __init__(self, func, future: Future, total: int, functions=None):
        super().__init__(func, streaming=False, functions=functions)
        self.future: Future | None = future
        self._slots: list | None = [None] * total

    def deliver(self, indices: Sequence[int], results: list[Any]) -> None:
        slots = self._slots
        assert slots is not None, "a delivery after the map's end"
        if isinstance(indices, range) and indices.step == 1:
            slots[indices.start:indices.stop] = results
        else:
            for index, value in zip(indices, results):
                slots[index] = value

    def finish(self, error: BaseException | None, report: Report | None) -> None:
        slots, self._slots = self._slots, None
        future, self.future = self.future, None  # the caller's to hold, not the pool's
        super().finish(error, report)
        assert future is not None, "a map finished twice"
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(slots)


class ResultTimeout(multiprocessing.TimeoutError, TimeoutError):
    """AsyncResult.get(timeout) ran out: caught as multiprocessing.TimeoutError (what
    multiprocessing and MPIRE raise) and as the builtin TimeoutError."""


class AsyncResult:
    """The result of `apply_async` or `map_async` to come, as multiprocessing's AsyncResult.

    Parameters
    ----------
    future : concurrent.futures.Future
        The call's future, which the pool's Boss ends.
    """

    def __init__(self, future: Future):
        self._future = future

    def get(self, timeout=None):
        """Wait for the result and return it, or raise the call's error.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most. Default None: as long as it takes.

        Raises
        ------
        multiprocessing.TimeoutError
            Not ready within `timeout` (the call goes on; `get` may be called again).
        """
        try:
            return self._future.result(timeout)
        except TimeoutError:
            if not self._future.done():
                raise ResultTimeout(f"the result was not ready within {timeout} s") from None
            raise

    def wait(self, timeout=None):
        """Wait until the result is ready, or `timeout` seconds (None: no limit); raises
        nothing, even for a failed call."""
        try:
            self._future.exception(timeout)  # (returns the call's own exception)
        except (TimeoutError, CancelledError):
            pass  # waiting only: not ready in time, or cancelled, is said by ready()

    def ready(self) -> bool:
        """Whether the call has ended (with a result or an error)."""
        return self._future.done()

    def successful(self) -> bool:
        """Whether the call ended with a result; ValueError if it has not ended yet."""
        if not self._future.done():
            raise ValueError("the result is not ready yet")
        return not self._future.cancelled() and self._future.exception() is None


class Release:
    """Hands an iterator map's results to its consumer: as they come, or in input order
    (holding back what arrives early)."""

    def __init__(self, ordered: bool):
        self.ordered = ordered
        self.waiting: dict = {}
        self.next = 0

    def add(self, indices, results) -> list:
        if not self.ordered:
            return results
        self.waiting.update(zip(indices, results))
        ready = []
        while self.next in self.waiting:
            ready.append(self.waiting.pop(self.next))
            self.next += 1
        return ready


class HandOver:
    """An iterator map's side of the hand-over, for its blocking and its awaited face alike:
    each chunk of results released in the order asked, the Boss told how many the consumer
    took once it took them (so a bounded read-ahead moves on, and no further), and the map
    cancelled if the consumer leaves it before its end (a `break`, a dropped iterator, an
    error)."""

    def __init__(self, boss, job, ordered: bool):
        self._boss, self._job = boss, job
        self._release = Release(ordered)

    def ready(self, indices, results) -> list:
        """What of this chunk (and of those held back) may go to the consumer now."""
        return self._release.add(indices, results)

    def taken(self, count: int) -> None:
        """The consumer took `count` results."""
        if count:
            self._boss.consumed(self._job.id, count)

    def abandon(self) -> None:
        """The consumer is gone: a map still running is cancelled."""
        if not self._job.handle.done:
            self._boss.cancel(self._job.id)

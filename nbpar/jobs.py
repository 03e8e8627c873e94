"""The caller's side of a map: a handle the Boss fills, and the futures built on it.

The Boss thread calls `deliver`, `started` and `finish`; the caller's thread waits on the
handle. Nothing here decides anything: that is the Boss's job.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

from .errors import SerializationError, describe

_END = object()


class JobHandle:
    """One map seen from the caller: completion, streamed results, the final report."""

    def __init__(self, func, streaming: bool):
        self.func = func
        self.streaming = streaming
        self.error: BaseException | None = None
        self.report = None
        self._done = threading.Event()
        self._stream = queue.SimpleQueue() if streaming else None
        self._func_body = None

    # -- called by the Boss thread
    def func_body(self, encode):
        if self._func_body is None:
            try:
                self._func_body = encode(self.func)
            except Exception as exc:  # noqa: BLE001
                raise SerializationError(
                    f"the function {describe(self.func)} cannot be pickled to be sent to the "
                    f"workers: {type(exc).__name__}: {exc}") from exc
        return self._func_body

    def started(self):
        pass

    def deliver(self, indices, results):
        self._stream.put((indices, results))

    def finish(self, error, report):
        self.error = error
        self.report = report
        self._done.set()
        if self._stream is not None:
            self._stream.put(_END)

    # -- called by the caller
    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout=None) -> bool:
        return self._done.wait(timeout)

    def chunks(self):
        """Delivered (indices, results) pairs as they come; raises the map's error at the end."""
        while True:
            chunk = self._stream.get()
            if chunk is _END:
                if self.error is not None:
                    raise self.error
                return
            yield chunk


class FutureHandle(JobHandle):
    """A single call (submit / apply_async) whose result lands in a concurrent.futures.Future."""

    def __init__(self, func, future: Future):
        super().__init__(func, streaming=True)
        self.future = future
        self._running = False

    def started(self):
        if not self._running:
            self._running = True
            self.future.set_running_or_notify_cancel()

    def deliver(self, indices, results):
        if not self.future.done():
            self.future.set_result(results[0])

    def finish(self, error, report):
        super().finish(error, report)
        if self.future.done():
            return
        if error is not None:
            if not self._running and not self.future.set_running_or_notify_cancel():
                return  # cancelled before it ran
            self.future.set_exception(error)
        elif not self._running:
            self.future.cancel()


class AsyncResult:
    """multiprocessing's AsyncResult over a Future: get(timeout), ready(), successful(), wait()."""

    def __init__(self, future: Future):
        self._future = future

    def get(self, timeout=None):
        try:
            return self._future.result(timeout)
        except TimeoutError:
            if not self._future.done():
                raise TimeoutError(f"the result was not ready within {timeout} s") from None
            raise

    def wait(self, timeout=None):
        try:
            self._future.exception(timeout)
        except Exception:  # noqa: BLE001 - waiting only
            pass

    def ready(self) -> bool:
        return self._future.done()

    def successful(self) -> bool:
        if not self._future.done():
            raise ValueError("the result is not ready yet")
        return not self._future.cancelled() and self._future.exception() is None

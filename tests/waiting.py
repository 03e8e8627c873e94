"""What the tests wait with, so that none sleeps blindly: a call the test steers while it runs
(a map, say), kept in a background thread with its outcome, and a condition awaited until it
holds or time is up. One copy for the tests of every sub-directory.
"""

from __future__ import annotations

import threading
import time


class Background:
    """Runs `call()` in a thread; keeps its result or the exception it raised."""

    def __init__(self, call):
        self.result = self.error = None
        self.thread = threading.Thread(target=self._run, args=(call,))
        self.thread.start()

    def _run(self, call):
        try:
            self.result = call()
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def join(self, timeout=30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the call did not end within {timeout} s"
        return self


def wait_for(predicate, timeout=20.0, what="condition", every=0.02):
    """The first true value of `predicate()`, asked every `every` seconds; AssertionError if
    none comes within `timeout` seconds (reports and processes have no change event)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(every)

"""What a pool tells its subscribers (`WorkerPool.subscribe`): each signal its callers send,
and its report as it changes.

    pool.halt() ──► SignalSent to each signal subscriber ──► the Boss's control pipe ──► after()
    the Boss ◄── report requests (~10 Hz while a map runs) ── the pool's report thread
                                                                   └──► ReportChanged

A signal is told in the sending thread, just before it goes on the control pipe: a subscriber
acts on the caller's side first (cluster.py holds, releases or stops the grid jobs of a pool's
tasks) and may return a callable run once the Boss has the signal. Reports are read from the
Boss like any other reader's, by one thread per pool that runs only while a report subscriber
exists: nothing here runs in the Boss's loop, and the Boss knows nothing of subscribers.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .reports import Report
from .signals import Signal

_log = logging.getLogger(__name__)

REPORT_INTERVAL = 0.1  # s between report requests while a map runs (~10 Hz, as the widget)
IDLE_INTERVAL = 1.0  # s between them while none runs (a new map or a signal wakes it at once)
ACTIVE = ("running", "halted")


@dataclass(frozen=True)
class SignalSent:
    """A signal a caller sent to the pool (`halt`, `resume`, `stop`, `send`, a widget's
    button, Ctrl-C), told to the pool's signal subscribers before the Boss gets it.

    Attributes
    ----------
    pool : nbpar.WorkerPool
        The pool it was sent to.
    signal : nbpar.Signal
        The signal.
    for_map : int or None
        The `job_id` of the map it was meant for (`send(signal, for_map=...)`), else None.
    """

    pool: Any
    signal: Signal
    for_map: int | None = None


@dataclass(frozen=True)
class ReportChanged:
    """The pool's report, told to its report subscribers when it differs from the last one
    told: another map, status, total, count of done or failed items, HALT of the pool, or
    state or task count of a worker.

    Attributes
    ----------
    pool : nbpar.WorkerPool
        The pool.
    report : nbpar.Report
        Its snapshot (immutable), as `pool.report()` returns it.
    """

    pool: Any
    report: Report


Callback = Callable[[Any], Any]


def _key(report: Report) -> tuple[Any, ...]:
    """What a report subscriber hears about: a report with the same key is not told again."""
    return (report.job_id, report.status, report.total, report.done, report.failed,
            report.pool_halted, tuple((w.state, w.tasks_done) for w in report.workers))


class Subscriptions:
    """A pool's subscribers, and the order between signals and subscriptions.

    Signals may be sent from many threads at once. A subscription waits for the signals
    being sent by other threads to reach the Boss: once `subscribe` returns, every signal
    sent before it is on the control pipe (a report asked for now reflects it), and every
    signal sent after it is told to the new subscriber.
    """

    def __init__(self, pool: Any) -> None:
        self._pool = weakref.ref(pool)  # a subscription never keeps its pool alive
        self._cond = threading.Condition()
        self._sending: dict[int, int] = {}  # thread id -> signals it is sending now
        self._signals: tuple[Callback, ...] = ()
        self._reports: tuple[Callback, ...] = ()
        self._feed: _ReportFeed | None = None

    def subscribe(self, callback: Callback, signals: bool, reports: bool) -> Callable[[], None]:
        me = threading.get_ident()
        with self._cond:
            if signals:
                self._signals += (callback,)
            if reports:
                self._reports += (callback,)
                if self._feed is None or not self._feed.running:
                    self._feed = _ReportFeed(self._pool, self)
            feed = self._feed if reports else None
            # (a subscriber that subscribes from its own callback does not wait for itself)
            self._cond.wait_for(lambda: not any(t != me for t in self._sending))
        if feed is not None:
            feed.poke()
        done = False

        def unsubscribe() -> None:
            nonlocal done
            with self._cond:
                if done:
                    return
                done = True
                if signals:
                    self._signals = _without(self._signals, callback)
                if reports:
                    self._reports = _without(self._reports, callback)
            if reports and feed is not None:
                feed.poke()  # it ends once no report subscriber is left

        return unsubscribe

    def report_subscribers(self, feed: _ReportFeed) -> tuple[Callback, ...]:
        """The report subscribers, for the feed; none left ends the feed, under the lock a
        subscription takes, so a new subscriber never joins a feed about to end."""
        with self._cond:
            if not self._reports:
                feed.running = False
            return self._reports

    # -- signals, from the pool's `_signal`
    def begin_signal(self, told: SignalSent) -> list[Callable[[], object]]:
        """Tell the signal subscribers (in the sending thread); their "after" callables."""
        me = threading.get_ident()
        with self._cond:
            self._sending[me] = self._sending.get(me, 0) + 1
            subscribers = self._signals
        after = []
        for callback in subscribers:
            try:
                action = callback(told)
            except Exception:  # noqa: BLE001 - a failing subscriber never keeps a signal from the Boss
                _log.debug("a subscriber failed on %s", told.signal, exc_info=True)
                action = None
            if callable(action):
                after.append(action)
        return after

    def end_signal(self, told: SignalSent, after: list[Callable[[], object]]) -> None:
        """The signal is on the control pipe: run the "after" callables, wake the feed."""
        me = threading.get_ident()
        with self._cond:
            left = self._sending[me] - 1
            if left:
                self._sending[me] = left
            else:
                del self._sending[me]
                self._cond.notify_all()
        for action in after:
            try:
                action()
            except Exception:  # noqa: BLE001 - a subscriber must not stop the signal
                _log.debug("an action after signal %s failed", told.signal, exc_info=True)
        self.poke()

    def poke(self) -> None:
        """Something may have changed the report (a signal, a new map): look now."""
        feed = self._feed
        if feed is not None:
            feed.poke()


def _without(callbacks: tuple[Callback, ...], callback: Callback) -> tuple[Callback, ...]:
    for k, c in enumerate(callbacks):
        if c is callback or c == callback:
            return callbacks[:k] + callbacks[k + 1:]
    return callbacks


class _ReportFeed:
    """The pool's report thread: reads the report about ten times a second while a map runs
    (once a second otherwise, or at once when poked), and tells the report subscribers when
    it changed. It ends when no report subscriber is left, or when the pool is gone or
    closed (after telling its last report)."""

    def __init__(self, pool_ref: weakref.ref[Any], subs: Subscriptions) -> None:
        self._pool_ref = pool_ref
        self._subs = subs
        self._wake = threading.Event()
        self.running = True
        self._thread = threading.Thread(target=self._run, name="nbpar-reports", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        last: tuple[Any, ...] | None = None
        try:
            while True:
                self._wake.clear()
                status, last = self._look(last)
                if status is None:
                    return
                if status in ACTIVE:
                    time.sleep(REPORT_INTERVAL)  # at most ~10 reads a second, pokes or not
                else:
                    self._wake.wait(IDLE_INTERVAL)
        finally:
            self.running = False

    def _look(self, last: tuple[Any, ...] | None) -> tuple[str | None, tuple[Any, ...] | None]:
        """Read the report and tell it if it changed: (its status, or None to end; its key).
        The pool is held only in here, so the thread never keeps it alive between looks."""
        subscribers = self._subs.report_subscribers(self)
        pool = self._pool_ref()
        if pool is None or not subscribers:
            return None, last
        try:
            report = pool.report()
        except Exception:  # noqa: BLE001 - a failed snapshot is skipped, not fatal
            _log.debug("the report feed's snapshot failed", exc_info=True)
            return ("idle" if pool.is_alive() else None), last
        key = _key(report)
        if key != last:
            told = ReportChanged(pool, report)
            for callback in subscribers:
                try:
                    callback(told)
                except Exception:  # noqa: BLE001 - one subscriber must not stop the rest
                    _log.debug("a report subscriber failed", exc_info=True)
        return (report.status if pool.is_alive() else None), key

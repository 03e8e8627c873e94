"""A tqdm progress bar fed from the pool's report snapshots.

The bar never touches the Boss's loop: it reads `pool.report()` about ten times a second and
draws it, in a daemon thread of its own -- or, for a map that blocks its caller anyway, in the
caller's thread while it waits (`follow`), which spares a short map a thread's start and join.
`tqdm.auto` picks the notebook renderer in Jupyter and the text one in a terminal; tqdm is
imported here only, when a bar is asked for. In a notebook the closed bar also leaves the
map's summary (summary.py) as a plain output: a saved notebook keeps the bar's first draw
only, as its fallback text.
"""

from __future__ import annotations

import threading

REFRESH_INTERVAL = 0.1  # seconds: ~10 Hz, well below Jupyter's IOPub rate limit


class ProgressBar:
    """Shows `done / total` and the map's status until `close()`."""

    def __init__(self, pool, total, *, initial=None, interval=REFRESH_INTERVAL, thread=True,
                 **tqdm_options):
        from tqdm.auto import tqdm

        self._pool = pool
        self._interval = interval
        self._status = None
        tqdm_options.setdefault("unit", "item")
        tqdm_options.setdefault("dynamic_ncols", True)
        if initial is None:  # a continued map starts from what its report had done
            first = self._snapshot()
            initial = first.done if first is not None else 0
        self._bar = tqdm(total=total, initial=initial, **tqdm_options)
        self._stopped = threading.Event()
        self._thread = None
        if thread:
            self._thread = threading.Thread(target=self._run, name="nbpar-progress",
                                            daemon=True)
            self._thread.start()

    def _run(self):
        while not self._stopped.wait(self._interval):
            self._update()

    def follow(self, handle):
        """Wait in the caller's thread for the map of `handle` to end, drawing meanwhile (a
        bar made with thread=False)."""
        while not handle.wait(self._interval):
            self._update()

    def _snapshot(self):
        try:
            return self._pool.report()
        except Exception:  # noqa: BLE001 - a failing snapshot must not kill the display
            return None

    def _update(self, report=None, draw=True):
        """Bring the bar to a report (a fresh snapshot if none is given); `draw=False` leaves
        the drawing to a close that follows."""
        report = report if report is not None else self._snapshot()
        if report is None:
            return
        bar = self._bar
        if report.total is not None and report.total != bar.total:
            bar.total = report.total
        status = report.status
        if report.failed:
            status = f"{status}, {report.failed} failed"
        changed = status != self._status
        if changed:
            self._status = status
            bar.set_postfix_str(status, refresh=False)
        delta = report.done - bar.n
        if delta > 0 and draw:
            bar.update(delta)  # redraws at most every tqdm.mininterval
        elif delta != 0:
            bar.n = report.done
        if draw and (delta < 0 or changed):
            bar.refresh()

    def close(self, final=None):
        """Stop the thread, draw the final state and close the bar (idempotent). `final` is
        the map's own last report when the caller has it: then no round trip to the Boss."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        final = final if final is not None else self._snapshot()
        self._update(final, draw=False)
        self._bar.close()  # draws the final state once
        from .kernel import in_notebook
        if final is not None and final.job_id is not None and in_notebook():
            from . import summary
            name = (final.func_name or "").removeprefix("__main__.")
            pool = self._pool
            summary.show(final, f"{name} · {pool.n_jobs} workers · {pool.start_method}",
                         pool=pool)

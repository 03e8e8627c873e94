"""A tqdm progress bar fed from the pool's report snapshots.

The bar never touches the Boss's loop: a daemon thread reads `pool.report()` about ten times a
second and draws it. `tqdm.auto` picks the notebook renderer in Jupyter and the text one in a
terminal; tqdm is imported here only, when a bar is asked for.
"""

from __future__ import annotations

import threading

REFRESH_INTERVAL = 0.1  # seconds: ~10 Hz, well below Jupyter's IOPub rate limit


class ProgressBar:
    """Shows `done / total` and the map's status until `close()`."""

    def __init__(self, pool, total, *, interval=REFRESH_INTERVAL, **tqdm_options):
        from tqdm.auto import tqdm

        self._pool = pool
        self._interval = interval
        self._status = None
        tqdm_options.setdefault("unit", "item")
        tqdm_options.setdefault("dynamic_ncols", True)
        first = self._snapshot()  # a continued map starts from what its report had done
        start = first.done if first is not None else 0
        self._bar = tqdm(total=total, initial=start, **tqdm_options)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nbpar-progress", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stopped.wait(self._interval):
            self._update()

    def _snapshot(self):
        try:
            return self._pool.report()
        except Exception:  # noqa: BLE001 - a failing snapshot must not kill the display
            return None

    def _update(self):
        report = self._snapshot()
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
        if delta > 0:
            bar.update(delta)  # redraws at most every tqdm.mininterval
        elif delta < 0:
            bar.n = report.done
        if delta < 0 or changed:
            bar.refresh()

    def close(self):
        """Stop the thread, draw the final state and close the bar (idempotent)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self._update()
        self._bar.close()

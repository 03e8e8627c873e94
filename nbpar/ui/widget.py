"""PoolWidget: a pool's live view in a notebook, with HALT / RESUME / STOP / STOP NOW buttons.

The widget is a view over report snapshots, like the tqdm bar in progress.py: a daemon thread
reads `pool.report()` about ten times a second and sets the widgets' values (traitlets send
only what changed, so an unchanged view costs no message). Nothing here runs in the Boss's
loop: the Boss only answers the report requests and appends worker output lines to a deque.

The buttons send signals on the Boss's control pipe (`pool.send`). They act while the map's
cell runs, even a cell blocked in `pool.map`: on ipykernel >= 7.4 their messages are handled
in a kernel subshell (live.py); elsewhere, while an awaited or background map runs. A failing
button shows its error in the widget instead of raising into the kernel.

Worker output is routed here while a map runs (`pool.on_output`): one pane of lines tagged
with the worker id, redrawn with the rest at the refresh rate, holding the last `max_lines`.
"""

from __future__ import annotations

import html
import threading
import time
import weakref
from collections import deque

import ipywidgets as w

from ..errors import describe
from ..pool import WorkerPool
from ..signals import Signal
from .live import route as route_to_subshell
from . import summary
from .summary import duration as _duration

REFRESH_INTERVAL = 0.1  # s: ~10 Hz, far below JupyterLab's IOPub rate limit (~1000 msg/s)
IDLE_INTERVAL = 1.0  # s: a pool shown by its rich display, while no map runs
MAX_LINES = 1000  # worker output lines kept in the pane
MAX_ERRORS = 10  # errors shown with their tracebacks
RATE_WINDOW = 5.0  # s of snapshots the rate (and so the ETA) is measured over
ACTIVE = ("running", "halted")

# status -> (text colour, progress bar style)
STYLES = {
    "idle": ("#616161", ""),
    "running": ("#1565c0", "info"),
    "halted": ("#b26a00", "warning"),
    "finished": ("#2e7d32", "success"),
    "stopped": ("#e65100", "warning"),
    "failed": ("#c62828", "danger"),
}

BUTTONS = (  # label, signal, icon, style, tooltip
    ("HALT", Signal.HALT, "pause", "warning", "start no new work; running tasks finish"),
    ("RESUME", Signal.RESUME, "play", "success", "start work again"),
    ("STOP", Signal.STOP, "stop", "danger", "start nothing more; running tasks finish"),
    ("STOP NOW", Signal.STOP_RIGHTNOW, "times", "danger",
     "kill running tasks now; what they ran counts as pending"),
)
LABELS = {signal: label for label, signal, *_ in BUTTONS}


class PoolWidget:
    """The live view of a pool's latest map: `nbpar.PoolWidget(pool)` in a notebook cell.

    Shows a progress bar with rate and ETA, the report counts, a per-worker table, the errors
    with their remote tracebacks, the worker output pane and the control buttons; the final
    state in colour when the map ends. `close()` stops following the pool (the view stays).
    The view itself is `.box` (an ipywidgets VBox), for embedding in other layouts.

    Parameters
    ----------
    pool : nbpar.WorkerPool
        The pool to follow (`.pool` of an `nbpar.Pool` or `nbpar.Executor`); the widget
        holds it weakly, so it never keeps a pool alive.
    interval : float, default 0.1
        Seconds between redraws, at most (JupyterLab drops output past ~1,000 messages a
        second).
    max_lines : int, default 1000
        Lines of worker output the pane keeps.
    for_map : bool, default False
        Made for a map about to start (as `for_map` makes it): redraw at `interval` from
        the start. Otherwise, while no map runs, it checks the pool once a second only.
    live : bool, default True
        False when the cell blocks the kernel: the widget then says that its buttons act
        only once the cell ends.
    """

    def __init__(self, pool, *, interval=REFRESH_INTERVAL, max_lines=MAX_LINES,
                 for_map=False, live=True):
        self._pool = weakref.ref(pool)  # the view never keeps a pool alive
        self._title = f"{pool.n_jobs} workers · {pool.start_method}"
        self._processes = pool.start_method not in ("threading", "dask")
        self._interval = interval
        self._for_map = for_map
        self._lock = threading.Lock()  # one refresh at a time (the thread, or a caller)
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._incoming: deque = deque()  # (stream, text) appended by the Boss thread
        self._lines: deque = deque(maxlen=max_lines)
        self._lines_total = 0
        self._rate_points: deque = deque()
        self._job = None
        self._previous_sink = None
        self.last_report = None
        self._build()
        self._note = "" if (live or self.live) else (
            "this kernel handles clicks only between cells, so the buttons act once this cell "
            "ends (ipykernel 7.4 or newer acts at once)")
        self.refresh()  # drawn before the map starts, so the map never waits for the first draw
        # the map already over when the view was made is not summarized again
        first = self.last_report
        self._summarized = (first.job_id if first is not None and first.status not in ACTIVE
                            else None)
        self._thread = threading.Thread(target=self._follow, name="nbpar-widget", daemon=True)
        self._thread.start()

    @classmethod
    def for_map(cls, pool, *, live=True, show=True):
        """A widget for the map about to run: shown, with the pool's output routed to it
        until `close()`.

        Parameters
        ----------
        pool : nbpar.WorkerPool
            The pool that runs the map.
        live : bool, default True
            As for the constructor.
        show : bool, default True
            Display it in the current cell now.
        """
        view = cls(pool, for_map=True, live=live)
        view.route_output()
        if show:
            from IPython.display import display
            display(view)
        return view

    # -- building
    def _build(self):
        self.header = w.HTML()
        self.bar = w.IntProgress(min=0, max=1, value=0, layout=w.Layout(width="auto",
                                                                        flex="1 1 auto"))
        self.progress = w.HTML()
        self.buttons = {}
        for label, signal, icon, style, tip in BUTTONS:
            button = w.Button(description=label, icon=icon, button_style=style, tooltip=tip,
                              layout=w.Layout(width="auto"))
            button.on_click(lambda _b, s=signal: self.send(s))
            self.buttons[label] = button
        self.live = all([route_to_subshell(b) for b in self.buttons.values()])
        self.message = w.HTML()
        self.table = w.HTML()
        self.errors = w.HTML(layout=w.Layout(display="none"))
        # column-reverse puts the pane's scroll origin at its bottom: new lines stay in view,
        # and a user who scrolled up stays where they are
        self.output = w.Output(layout=w.Layout(display="none", max_height="16em",
                                               overflow="auto", border="1px solid #ddd",
                                               flex_flow="column-reverse"))
        self.box = w.VBox([
            self.header,
            w.HBox([self.bar, self.progress], layout=w.Layout(align_items="center")),
            w.HBox(list(self.buttons.values()) + [self.message],
                   layout=w.Layout(align_items="center")),
            self.table, self.errors, self.output])

    def follow_cells(self, ip):
        """Draw and summarize at the end of every cell of the shell `ip`: a map that ends
        within a cell then leaves its final state and summary in that cell's outputs (the
        refresh thread may come too late, after the cell ended), until the pool is gone."""
        def after_cell(_result=None):
            if self._closed.is_set() or self.refresh() is None:
                ip.events.unregister("post_run_cell", after_cell)
            if not self._for_map:
                self._leave_summary()

        ip.events.register("post_run_cell", after_cell)

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.box._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict) and "text/plain" in bundle:  # what a viewer without the
            # widget's state shows: not the first draw ("idle"), which would be stale there
            bundle["text/plain"] = (f"nbpar pool widget ({self._title}): a live view; each "
                                    f"map leaves a summary in the cell when it ends")
        return bundle

    # -- the caller's side
    def send(self, signal: Signal):
        """What a button does: send `signal` for the map on show; a failure is shown.

        The click is tagged with that map, so it never acts on another: if the map has
        ended before the kernel got to the click, the Boss drops it and the note says so.
        A HALT or STOP that comes once the view shows its map ended (those buttons are
        disabled then) was pressed on the page before the update reached it: not applied
        either, or it would hold the pool and so the next map.
        """
        pool = self._pool()
        label = LABELS[signal]
        shown = self.last_report
        for_map = shown.job_id if shown is not None and shown.status in ACTIVE else None
        try:
            if pool is None:
                raise RuntimeError("the pool is gone")
            if (signal is not Signal.RESUME and isinstance(pool, WorkerPool)
                    and for_map is None and shown is not None and shown.job_id is not None):
                self._note = f"{label} not applied: the map it was pressed for has ended"
                self._wake.set()
                return
            if isinstance(pool, WorkerPool) and for_map is not None:
                now = _snapshot(pool)
                if now is None or now.job_id != for_map or now.status not in ACTIVE:
                    self._note = f"{label} not applied: the map it was pressed for has ended"
                    self._wake.set()
                    return
                pool.send(signal, for_map=for_map)
            else:
                pool.send(signal)
            self._note = f"{label} pressed"
        except Exception as exc:  # noqa: BLE001 - a button must never break the widget
            self._note = f"{label} failed: {type(exc).__name__}: {exc}"
        self._wake.set()

    def route_output(self):
        """Send the pool's worker output to this widget's pane (until `close()`)."""
        pool = self._pool()
        if pool is not None and self._previous_sink is None:
            self._previous_sink = pool.on_output
            pool.on_output = self.write

    def write(self, worker_id, stream, line):
        """An output sink (worker_id, stream, line); called by the Boss thread, so it only
        appends: the refresh thread draws."""
        self._incoming.append((stream, f"[worker {worker_id}] {line}\n"))

    @property
    def lines(self) -> list[str]:
        """The output lines the pane holds (tagged), oldest first."""
        self._take_lines()
        return [text for _, text in self._lines]

    def close(self):
        """Stop following the pool: draw the final state, give back the output sink."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        pool = self._pool()
        if pool is not None and self._previous_sink is not None:
            if pool.on_output == self.write:
                pool.on_output = self._previous_sink
            self._previous_sink = None
        self.refresh(final=True)
        if self._for_map:
            self._leave_summary()

    # -- following the pool
    def _follow(self):
        active = True
        while not self._closed.is_set():
            self._wake.wait(self._interval if (active or self._for_map) else IDLE_INTERVAL)
            self._wake.clear()
            if self._closed.is_set():
                return
            try:
                active = self.refresh()
            except Exception as exc:  # noqa: BLE001 - shown; the view keeps following
                self._note = f"the view failed to redraw: {type(exc).__name__}: {exc}"
                continue
            if active is None:  # the pool is gone or closed: that view is final
                return

    def refresh(self, final=False):
        """Redraw from a fresh report now (the widget's thread also does, ~10 times a second).

        Parameters
        ----------
        final : bool, default False
            Draw the final state (finished, stopped or failed, in colour) even if the pool
            still runs.

        Returns
        -------
        bool or None
            True while a map is active, None once the pool has ended.
        """
        pool = self._pool()
        with self._lock:
            report = _snapshot(pool)
            if report is not None:
                self.last_report = report
                self._draw(report, final or not _alive(pool))
            self._draw_output()
        if report is None or not _alive(pool):
            return None
        return report.status in ACTIVE

    def _draw(self, r, final):
        colour, bar_style = STYLES.get(r.status, STYLES["idle"])
        name = (r.func_name or "").removeprefix("__main__.")
        held = (" · <b style='color:#b26a00'>pool halted</b>"
                if r.pool_halted and r.status not in ACTIVE else "")
        self.header.value = (f"<b>nbpar</b> · {html.escape(name or 'no map yet')} · "
                             f"{self._title} · <b style='color:{colour}'>{r.status}</b>{held}")
        total = r.total if r.total is not None else max(r.done, 1)
        self.bar.max = max(total, 1)
        self.bar.value = min(r.done, self.bar.max)
        self.bar.bar_style = bar_style
        self.progress.value = self._progress_text(r)
        for label, button in self.buttons.items():
            button.disabled = final or not _enabled(label, r)
        self.message.value = (f"<span style='color:#555'>{html.escape(self._note)}</span>"
                              if self._note else "")
        self.table.value = _workers_html(r.workers, self._processes)
        self.errors.value = _errors_html(r.errors)
        self.errors.layout.display = None if r.errors else "none"

    def _progress_text(self, r) -> str:
        if r.job_id != self._job:
            self._job = r.job_id
            self._rate_points.clear()
        # The live rate is measured over the last seconds of running: a halt empties the
        # window, so the time halted never counts; the rate after the end is the report's own
        # (this run's items over its running time).
        now = time.monotonic()
        points = self._rate_points
        if r.status == "running":
            points.append((now, r.done))
            while len(points) > 2 and now - points[0][0] > RATE_WINDOW:
                points.popleft()
        else:
            points.clear()
        total = "?" if r.total is None else r.total
        parts = [f"<b>{r.done}</b> / {total}"]
        if r.status == "running" and len(points) > 1 and now > points[0][0]:
            rate = (r.done - points[0][1]) / (now - points[0][0])
            parts.append(f"{rate:,.1f} items/s")
            if rate > 0 and r.total is not None:
                parts.append(f"ETA {_duration((r.total - r.done - r.failed) / rate)}")
        elif r.status != "running" and r.rate is not None:
            parts.append(f"{r.rate:,.1f} items/s")
        if r.failed:
            parts.append(f"<span style='color:#c62828'>{r.failed} failed</span>")
        if r.total is not None and r.status in ("stopped", "failed", "halted"):
            parts.append(f"{r.total - r.done - r.failed} pending")
        elapsed = f"{_duration(r.elapsed)} elapsed"
        if r.halted >= 0.05:
            elapsed += f" ({_duration(r.halted)} halted)"
        parts.append(elapsed)
        colour = STYLES.get(r.status, STYLES["idle"])[0]
        return f"<span style='color:{colour}'>" + " · ".join(parts) + "</span>"

    def summary(self) -> dict | None:
        """The plain record of the map shown ({"text/plain", "text/html"}: see summary.py),
        or None while no map has ended."""
        r = self.last_report
        if r is None or r.job_id is None or r.status in ACTIVE:
            return None
        return summary.bundle(r, self._summary_title(r), self.lines, self._lines_total)

    def _summary_title(self, r):
        return f"{(r.func_name or '').removeprefix('__main__.')} · {self._title}"

    def _leave_summary(self):
        """Display the summary of a map that ended, once, as an output of the cell (in a
        notebook: a widget's own state may not be saved, and a viewer shows this instead)."""
        with self._lock:
            r = self.last_report
            if r is None or r.job_id == self._summarized:
                return
            if r.job_id is None or r.status in ACTIVE:
                return
            self._summarized = r.job_id
        from . import kernel
        pool = self._pool()
        if kernel.in_notebook() and pool is not None:
            summary.show(r, self._summary_title(r), self.lines, self._lines_total, pool=pool)

    def _take_lines(self):
        incoming = self._incoming
        n = 0
        while incoming:
            self._lines.append(incoming.popleft())
            n += 1
        self._lines_total += n
        return n

    def _draw_output(self):
        if not self._take_lines():
            return
        outputs = []
        hidden = self._lines_total - len(self._lines)
        if hidden:
            outputs.append({"output_type": "stream", "name": "stdout",
                            "text": f"... {hidden} earlier lines not shown\n"})
        for stream, text in self._lines:
            name = "stderr" if stream == "stderr" else "stdout"
            if outputs and outputs[-1]["name"] == name:
                outputs[-1]["text"] += text
            else:
                outputs.append({"output_type": "stream", "name": name, "text": text})
        self.output.outputs = tuple(outputs)
        self.output.layout.display = "flex"


def _snapshot(pool):
    if pool is None:
        return None
    try:
        return pool.report()
    except Exception:  # noqa: BLE001 - a failing snapshot must not kill the view
        return None


def _alive(pool) -> bool:
    """Whether what the view follows still runs: a pool's Boss (a closed pool's view is
    final), or something else run on a pool (a joblib call), each by its `is_alive()`."""
    is_alive = getattr(pool, "is_alive", None)
    return is_alive is not None and bool(is_alive())


def _enabled(label, r) -> bool:
    if r.status == "running":
        return label != "RESUME"
    if r.status == "halted":
        return label != "HALT"
    return label == "RESUME" and r.pool_halted  # between maps, a halted pool can be resumed


_CELL = "padding:1px 8px;text-align:left"


def _workers_html(workers, processes=True) -> str:
    """The worker table; `processes`: the workers are processes of this machine, whose CPU
    and memory are measured (threads share one process, Dask workers run elsewhere)."""
    workers = summary.shown_workers(workers)  # a pool that never ran has no rows
    if not workers:
        return ""
    limited = any(w.recycled is not None for w in workers)  # a pool with max_worker_memory
    head = "".join(f"<th style='{_CELL}'>{h}</th>" for h in
                   ("worker", "pid", "state", "current item", "tasks done", "busy time")
                   + (("cpu", "memory (RSS / USS)") if processes else ())
                   + (("recycled",) if limited else ()))
    rows = []
    for info in workers:
        item = "" if info.state != "busy" else html.escape(describe(info.current_item))
        colour = {"busy": "#1565c0", "dead": "#c62828", "retired": "#999"}.get(info.state,
                                                                             "#555")
        cells: tuple = (info.id, info.where or info.pid or "",
                        f"<span style='color:{colour}'>{info.state}</span>", item,
                        info.tasks_done, f"{info.busy:.1f} s")
        if processes:
            cells += (_cpu(info), _memory(info))
        if limited:
            cells += (info.recycled,)
        rows.append("<tr>" + "".join(f"<td style='{_CELL}'>{c}</td>" for c in cells) + "</tr>")
    return ("<table style='border-collapse:collapse;font-size:12px;font-family:monospace'>"
            f"<tr>{head}</tr>{''.join(rows)}</table>")


def _cpu(info) -> str:
    return "" if info.cpu is None else f"{info.cpu:.0f} %"


def _memory(info) -> str:
    if info.rss is None:  # not running now: what max_worker_memory measured last, if any
        return f"{info.memory / 2**20:.0f} MB" if info.memory else ""
    return f"{info.rss / 2**20:.0f} / {info.uss / 2**20:.0f} MB"


def _errors_html(errors) -> str:
    if not errors:
        return ""
    parts = []
    for e in errors[:MAX_ERRORS]:
        where = ("the input iterable" if e.index is None and e.worker_id is None else
                 f"item {describe(e.item)} (index {e.index}) on worker {e.worker_id}")
        parts.append(
            f"<details><summary style='color:#c62828'>{html.escape(where)}: "
            f"{html.escape(e.type)}: {html.escape(e.message)}</summary>"
            f"<pre style='font-size:11px'>{html.escape(e.traceback)}</pre></details>")
    if len(errors) > MAX_ERRORS:
        parts.append(f"<div>... and {len(errors) - MAX_ERRORS} more errors</div>")
    return "".join(parts)

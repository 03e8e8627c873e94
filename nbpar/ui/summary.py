"""The plain record a map leaves in its notebook cell when it ends.

A widget lives only as long as its kernel and its frontend: a saved notebook without widget
state, nbconvert's HTML or GitHub's viewer show its fallback text, drawn before the map ran.
So when a map ends -- finished, stopped, failed or interrupted -- its view also displays this
summary as an ordinary output (text/plain and text/html): status, counts, times, workers, the
first errors and the tail of what the workers printed. It is built from a `Report` alone.
"""

from __future__ import annotations

import html
import weakref

MAX_ERRORS = 3  # errors named in the summary (the report has them all)
MAX_LINES = 40  # worker output lines kept, the last ones

# pool -> ids of its maps summarized already: a map followed by two views (a shown pool and
# its progress bar) leaves one summary
_shown: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

_COLOURS = {"finished": "#2e7d32", "stopped": "#e65100", "failed": "#c62828",
            "halted": "#b26a00", "running": "#1565c0"}


def counts_line(r) -> str:
    """'finished: 20/20 done, 1 failed, 0 pending · 1.3 s (1.1 s running) · 15.4 items/s'."""
    total = "?" if r.total is None else r.total
    parts = [f"{r.done}/{total} done"]
    if r.prior:
        parts.append(f"{r.prior} of them by an earlier run")
    if r.failed:
        parts.append(f"{r.failed} failed")
    if r.total is not None and r.status != "finished":
        parts.append(f"{max(0, r.total - r.done - r.failed)} pending")
    timing = f"{duration(r.elapsed)}"
    if r.halted >= 0.05:
        timing += f" ({duration(r.running_time)} running, {duration(r.halted)} halted)"
    line = f"{r.status}: {', '.join(parts)} · {timing}"
    if r.rate is not None:
        line += f" · {r.rate:,.1f} items/s"
    return line


def workers_line(workers) -> str:
    """'4 workers: 3 retired, 1 dead · 20 tasks · 5.2 s busy' (workers that never started are
    not counted)."""
    started = shown_workers(workers)
    if not started:
        return "no worker ran"
    states: dict = {}
    for w in started:
        states[w.state] = states.get(w.state, 0) + 1
    which = ", ".join(f"{n} {state}" for state, n in states.items())
    tasks = sum(w.tasks_done for w in started)
    busy = sum(w.busy for w in started)
    return (f"{len(started)} worker{'s' if len(started) != 1 else ''} ({which}) · "
            f"{tasks} tasks · {duration(busy)} busy")


def shown_workers(workers) -> list:
    """The workers worth a row: not the slots of a pool that never started them."""
    return [w for w in workers if w.pid is not None or w.tasks_done or w.state != "dead"]


def error_lines(errors, limit=MAX_ERRORS) -> list[str]:
    from ..errors import describe

    out = []
    for e in errors[:limit]:
        where = ("the input iterable" if e.index is None and e.worker_id is None else
                 f"item {describe(e.item)} (index {e.index}) on worker {e.worker_id}")
        out.append(f"{where}: {e.type}: {e.message}")
    if len(errors) > limit:
        out.append(f"... and {len(errors) - limit} more (report().errors has them all)")
    return out


def text(r, title, lines=(), lines_total=0) -> str:
    """The summary as plain text."""
    out = [f"nbpar · {title} · {counts_line(r)}", workers_line(r.workers)]
    errors = error_lines(r.errors)
    if errors:
        out.append(f"errors ({r.failed or len(r.errors)}):")
        out += [f"  {line}" for line in errors]
    tail = list(lines)[-MAX_LINES:]
    if tail:
        out.append(_output_heading(len(tail), max(lines_total, len(tail))))
        out += [f"  {line.rstrip()}" for line in tail]
    return "\n".join(out)


def as_html(r, title, lines=(), lines_total=0) -> str:
    """The summary as HTML, plain enough for GitHub's and nbconvert's sanitizers."""
    colour = _COLOURS.get(r.status, "#616161")
    status, _, rest = counts_line(r).partition(":")
    parts = [f"<div><b>nbpar</b> · {html.escape(title)} · "
             f"<b style='color:{colour}'>{html.escape(status)}</b>:{html.escape(rest)}</div>",
             f"<div>{html.escape(workers_line(r.workers))}</div>"]
    errors = error_lines(r.errors)
    if errors:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in errors)
        parts.append(f"<div style='color:#c62828'>errors ({r.failed or len(r.errors)}):"
                     f"<ul>{items}</ul></div>")
    tail = list(lines)[-MAX_LINES:]
    if tail:
        body = html.escape("".join(line if line.endswith("\n") else line + "\n"
                                   for line in tail))
        parts.append(f"<div>{html.escape(_output_heading(len(tail), max(lines_total, len(tail))))}"
                     f"</div><pre style='font-size:11px;margin:0'>{body}</pre>")
    return "<div class='nbpar-summary'>" + "".join(parts) + "</div>"


def bundle(r, title, lines=(), lines_total=0) -> dict:
    """{"text/plain": ..., "text/html": ...} for `IPython.display.display(..., raw=True)`."""
    return {"text/plain": text(r, title, lines, lines_total),
            "text/html": as_html(r, title, lines, lines_total)}


def show(r, title, lines=(), lines_total=0, pool=None) -> bool:
    """Display the summary as an output of the current cell, once per map of `pool`;
    False when it was shown already."""
    from IPython.display import display

    if pool is not None:
        shown = _shown.setdefault(pool, set())
        if r.job_id in shown:
            return False
        shown.add(r.job_id)
    display(bundle(r, title, lines, lines_total), raw=True)
    return True


def duration(seconds) -> str:
    """'3.2 s', '42 s', '1:05', '1:02:03'."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f} s"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _output_heading(shown, total) -> str:
    if total > shown:
        return f"worker output (the last {shown} of {total} lines):"
    return f"worker output ({shown} line{'s' if shown != 1 else ''}):"

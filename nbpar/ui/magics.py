"""`%parallel_map`: a thin adapter from a magic line to a pool, its map and its widget.

    %parallel_map [-n N] [--start-method M] [--shared EXPR] [--chunk-size K] [--background]
                  [-o VAR] [--continue] FUNC [ITERABLE_EXPR]

Options are parsed with IPython's `magic_arguments` (options first, then FUNC); FUNC is a
name (or dotted name) looked up in the user namespace, ITERABLE_EXPR and --shared are
expressions evaluated there. Anything wrong in the line is one `UsageError` line, never a
traceback from the internals.

How the map waits (see kernel.py): at the top level of a notebook cell the magic is awaited,
so the cell stays busy while the widget's buttons act; elsewhere it blocks (the buttons then act
once the cell ends); `--background` returns a `BackgroundMap` at once. A STOP button or the
toolbar's interrupt (acting as STOP_RIGHTNOW) ends the cell with one line that says how to
continue: `%parallel_map --continue FUNC` runs only what the stopped map left pending.
"""

from __future__ import annotations

import argparse
import asyncio
import keyword
import threading
from concurrent.futures import Future

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ..backends import START_METHODS
from ..errors import StoppedError
from ..pool import WorkerPool
from . import kernel
from .kernel import MapInterrupted

USAGE = ("%parallel_map [-n N] [--start-method M] [--shared EXPR] [--chunk-size K] "
         "[--background] [-o VAR] [--continue] FUNC [ITERABLE_EXPR]")


@magics_class
class ParallelMagics(Magics):
    """Holds `%parallel_map` and the report of the last map it stopped (for --continue)."""

    stopped = None  # nbpar.Report of the last stopped or interrupted map

    @no_var_expand  # the line is Python: `{...}` is a dict or set, not a template
    @magic_arguments()
    @argument("-n", "--n-jobs", type=int, metavar="N", help="workers (default: the CPU count)")
    @argument("--start-method", choices=START_METHODS, metavar="M",
              help="fork | forkserver | spawn | threading (default: forkserver)")
    @argument("--shared", metavar="EXPR", help="shared objects, handed to every call first")
    @argument("--chunk-size", type=int, metavar="K", help="items per batch (default: adaptive)")
    @argument("--background", action="store_true",
              help="return a handle at once; its .result() waits")
    @argument("-o", "--output", metavar="VAR", help="store the result list in VAR when done")
    @argument("--continue", dest="resume", action="store_true",
              help="run only what the last stopped %%parallel_map left pending")
    @argument("func", metavar="FUNC", help="a function in the namespace")
    @argument("iterable", nargs=argparse.REMAINDER, metavar="ITERABLE_EXPR",
              help="an expression giving the items")
    @line_magic
    def parallel_map(self, line):
        """Run FUNC over the items of ITERABLE_EXPR in a pool, showing the live pool widget.

        Returns the result list, in input order (with --background, a handle whose .result()
        waits). At the top level of a notebook cell the HALT / RESUME / STOP buttons act
        while the cell runs.
        """
        run = self.prepare(line)
        if run.background:
            return run.start_background()
        return run.blocking()

    def prepare(self, line) -> MapRun:
        """Parse and check the line; a UsageError names what is wrong, in one line."""
        words, spans = split_words(line)
        try:
            args = self.parallel_map.parser.parse_args(words)
        except UsageError as exc:
            raise UsageError(f"%parallel_map: {exc}; usage: {USAGE}") from None
        ns = self.shell.user_ns
        func = _lookup(args.func, ns)
        expr = line[spans[len(words) - len(args.iterable)][0]:].strip() if args.iterable else ""
        report = None
        if args.resume:
            if expr:
                _usage("--continue takes no ITERABLE_EXPR: it runs what the stopped map left")
            if self.stopped is None:
                _usage("--continue: no stopped %parallel_map to continue in this session")
            report = self.stopped
            items = None
        elif not expr:
            _usage("missing ITERABLE_EXPR")
        else:
            items = _evaluate(expr, ns, "ITERABLE_EXPR")
            try:
                iter(items)
            except TypeError:
                _usage(f"ITERABLE_EXPR {expr!r} is not iterable (a {type(items).__name__})")
        shared = _evaluate(args.shared, ns, "--shared") if args.shared is not None else None
        if args.output is not None and not (args.output.isidentifier()
                                            and not keyword.iskeyword(args.output)):
            _usage(f"-o needs a variable name, got {args.output!r}")
        try:
            pool = WorkerPool(args.n_jobs, start_method=args.start_method,
                              shared_objects=shared)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"%parallel_map: {exc}") from None
        return MapRun(self, pool, func, args.func, items, report, args)


class MapRun:
    """One `%parallel_map`: its pool, its view, and how it ends (result, stop, interrupt)."""

    def __init__(self, magics, pool, func, func_text, items, report, args):
        self.magics = magics
        self.pool = pool
        self.func, self.func_text = func, func_text
        self.items, self.report = items, report
        self.chunk_size = args.chunk_size
        self.background = args.background
        self.output = args.output
        self.widget = None

    def _show(self, live):
        if kernel.in_notebook():
            from .widget import PoolWidget
            self.widget = PoolWidget.for_map(self.pool, live=live)
        else:
            self.pool.on_output = _terminal_output

    def blocking(self):
        """The plain call: blocks the caller (a terminal, or a cell not awaited)."""
        self._show(live=False)
        return self.call(progress_bar=self.widget is None)

    def call(self, progress_bar=False):
        try:
            results = self.pool.map(self.func, self.items, chunk_size=self.chunk_size,
                                    report=self.report, progress_bar=progress_bar)
        except BaseException as exc:  # noqa: BLE001 - each ending is handled in _end
            return self._end(exc)
        return self._end(None, results)

    async def awaited(self):
        """The live call: awaits the map, so the kernel handles widget clicks meanwhile."""
        self._show(live=True)
        try:
            results = await self.pool.map_async(self.func, self.items,
                                                 chunk_size=self.chunk_size,
                                                 report=self.report)
        except BaseException as exc:  # noqa: BLE001
            return self._end(exc)
        return self._end(None, results)

    def start_background(self) -> BackgroundMap:
        """The map in a thread; the returned handle's .result() waits for it."""
        self._show(live=True)
        handle = BackgroundMap(self)
        threading.Thread(target=handle._run, name="nbpar-parallel-map", daemon=True).start()
        return handle

    def _end(self, error, results=None):
        """Close the pool and the view; return the results or raise one clear line."""
        pool = self.pool
        interrupted = isinstance(error, (KeyboardInterrupt, asyncio.CancelledError))
        try:
            if self.widget is not None:
                self.widget.close()  # the final view: the workers as the map left them
        finally:
            if error is None or isinstance(error, StoppedError) or interrupted:
                pool.close()
                pool.join()
            else:
                pool.terminate()
        if error is None:
            if self.report is not None and self.magics.stopped is self.report:
                self.magics.stopped = None  # continued: nothing is left to continue
            if self.output:
                self.magics.shell.user_ns[self.output] = results
            return results
        if isinstance(error, StoppedError) or interrupted:
            report = getattr(error, "report", None) or pool.report()
            self.magics.stopped = report
            how = "interrupted" if interrupted else "stopped"
            message = (f"the map was {how} after {report.done} of {report.total} items "
                       f"({len(report.pending)} pending); continue it with "
                       f"%parallel_map --continue {self.func_text}")
            if interrupted:
                raise MapInterrupted(message, report) from None
            raise StoppedError(message, report) from None
        raise error


class BackgroundMap:
    """What `%parallel_map --background` returns: the map runs on; `.result()` waits."""

    def __init__(self, run: MapRun):
        self._map = run
        self._future: Future = Future()
        self.pool = run.pool
        self.widget = run.widget

    def _run(self):
        try:
            self._future.set_result(self._map.call())
        except BaseException as exc:  # noqa: BLE001 - handed to .result()
            self._future.set_exception(exc)

    def result(self, timeout=None):
        """The result list once the map ends (raises what it raised)."""
        return self._future.result(timeout)

    def done(self) -> bool:
        return self._future.done()

    def report(self):
        return self.pool.report()

    def halt(self):
        self.pool.halt()

    def resume(self):
        self.pool.resume()

    def stop(self, now=False):
        self.pool.stop(now)

    def __repr__(self):
        r = self.report()
        total = "?" if r.total is None else r.total
        return (f"<parallel_map {self._map.func_text} in the background: {r.status}, "
                f"{r.done}/{total} done>")


async def parallel_map_awaited(line: str):
    """What a top-level `%parallel_map` line becomes in a live kernel (kernel.py)."""
    ip = kernel.shell()
    magics = ip.magics_manager.registry.get("ParallelMagics") if ip is not None else None
    if magics is None:
        raise UsageError("%parallel_map: run %load_ext nbpar first")
    run = magics.prepare(line)
    if run.background:
        return run.start_background()
    return await run.awaited()


def split_words(line: str):
    """Split a magic line on top-level whitespace: brackets and quotes hold together, so
    `range(0, 10)` and `["a  b"]` stay one word. Returns (words, their (start, end) spans)."""
    words, spans = [], []
    depth, quote, start, i = 0, None, None, 0
    while i < len(line):
        c = line[i]
        if start is None and not c.isspace():
            start = i
        if quote:
            if c == "\\":
                i += 1
            elif line.startswith(quote, i):
                i += len(quote) - 1
                quote = None
        elif c in "'\"":
            quote = line[i:i + 3] if line[i:i + 3] in ("'''", '"""') else c
            i += len(quote) - 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth = max(0, depth - 1)
        elif c.isspace() and depth == 0 and start is not None:
            words.append(line[start:i])
            spans.append((start, i))
            start = None
        i += 1
    if start is not None:
        words.append(line[start:])
        spans.append((start, len(line)))
    return words, spans


def _usage(message):
    raise UsageError(f"%parallel_map: {message}")


def _lookup(name: str, ns: dict):
    """FUNC: a name or dotted name in the user namespace (not evaluated), and callable."""
    head, *rest = name.split(".")
    if not head.isidentifier() or not all(part.isidentifier() for part in rest):
        _usage(f"FUNC must be a name in the namespace, got {name!r}")
    if head in ns:
        obj = ns[head]
    else:
        import builtins
        if not hasattr(builtins, head):
            _usage(f"FUNC {name!r} is not defined")
        obj = getattr(builtins, head)
    for part in rest:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            _usage(f"FUNC {name!r}: no attribute {part!r}")
    if not callable(obj):
        _usage(f"FUNC {name!r} is not callable (a {type(obj).__name__})")
    return obj


def _evaluate(expr: str, ns: dict, what: str):
    try:
        return eval(expr, ns)  # noqa: S307 - the user's own expression, in their namespace
    except Exception as exc:  # noqa: BLE001
        _usage(f"{what} {expr!r} failed: {type(exc).__name__}: {exc}")


def _terminal_output(worker_id, stream, line):
    """Worker output in a terminal, printed above the tqdm bar."""
    import sys

    from tqdm import tqdm

    tqdm.write(f"[worker {worker_id}] {line}", file=sys.stderr if stream == "stderr"
               else sys.stdout)


def load(ip):
    """`%load_ext nbpar`: register the magic, and in a live kernel the awaiting rewrite."""
    ip.register_magics(ParallelMagics)
    kernel.install(ip)


def unload(ip):
    kernel.uninstall(ip)

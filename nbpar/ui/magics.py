"""`%parallel_map`: a thin adapter from a magic line to a pool, its map and its view.

    %parallel_map [-n N] [--start-method M] [--shared EXPR] [--chunk-size K]
                  [--timeout SECONDS] [--checkpoint PATH] [--progress widget|text|none]
                  [--keep-alive] [--pool VAR] [--background] [-o VAR] [--continue]
                  FUNC [ITERABLE_EXPR]

Options are parsed with IPython's `magic_arguments` (options first, then FUNC); FUNC and
--pool VAR are names (or dotted names) looked up in the user namespace, ITERABLE_EXPR and
--shared are expressions evaluated there. Anything wrong in the line is one `UsageError`
line, never a traceback from the internals.

The magic is a plain call that blocks until the map ends, so it works wherever a call does
(`%time`, `%%time`, `%timeit`, an assignment, a `with` block, a loop, a function); the
widget's buttons act meanwhile through nbpar's kernel subshell (live.py). `--background`
returns a `BackgroundMap` at once. A STOP button or the toolbar's interrupt (which stops the
map at once, as STOP NOW) ends the cell with one line that says how to continue:
`%parallel_map --continue FUNC` runs only what the stopped map left pending. A failed map
shows the cell's line and the worker's frames, not nbpar's (kernel.show_user_frames).

The magic makes a pool for each map and closes it after, unless it is given one (--pool) or
keeps its own for the next maps (--keep-alive).
"""

from __future__ import annotations

import argparse
import ast
import keyword
import os
import threading
from concurrent.futures import Future

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ..backends import START_METHODS
from ..errors import StoppedError, ended_early
from ..pool import WorkerPool
from . import kernel
from .kernel import MapInterrupted

USAGE = ("%parallel_map [-n N] [--start-method M] [--shared EXPR] [--chunk-size K] "
         "[--timeout SECONDS] [--checkpoint PATH] [--progress widget|text|none] "
         "[--keep-alive] [--pool VAR] [--background] [-o VAR] [--continue] "
         "FUNC [ITERABLE_EXPR]")
PROGRESS = ("widget", "text", "none")
_POOL_OPTIONS = (("-n", "n_jobs"), ("--start-method", "start_method"), ("--shared", "shared"),
                 ("--keep-alive", "keep_alive"))  # they make a pool: not with --pool


@magics_class
class ParallelMagics(Magics):
    """Holds `%parallel_map`, what its last stopped map left (for --continue), and the
    pool it keeps between maps (--keep-alive)."""

    stopped = None  # nbpar.Report of the last stopped or interrupted map
    stopped_checkpoint = None  # (path, items) when that map had a checkpoint
    kept = None  # (settings, pool): the pool kept by --keep-alive

    @no_var_expand  # the line is Python: `{...}` is a dict or set, not a template
    @magic_arguments()
    @argument("-n", "--n-jobs", type=int, metavar="N", help="workers (default: the CPU count)")
    @argument("--start-method", choices=START_METHODS, metavar="M",
              help="fork | forkserver | spawn | threading (default: forkserver)")
    @argument("--shared", metavar="EXPR", help="shared objects, handed to every call first")
    @argument("--chunk-size", type=int, metavar="K", help="items per batch (default: adaptive)")
    @argument("--timeout", type=float, metavar="SECONDS",
              help="seconds a task may run before it fails with TaskTimeoutError")
    @argument("--checkpoint", metavar="PATH",
              help="a file keeping each result: the same line again runs only what is missing")
    @argument("--progress", choices=PROGRESS, metavar="VIEW",
              help="widget | text | none (default: widget in a notebook, else text)")
    @argument("--keep-alive", action="store_true",
              help="keep the pool and its workers for the next --keep-alive map")
    @argument("--pool", metavar="VAR", help="run in this WorkerPool (left open)")
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

        A plain call that blocks until the map ends: it works under %time, %%time and
        %timeit, in an assignment, a with block, a loop or a function, and the widget's
        HALT / RESUME / STOP buttons act while it runs (ipykernel 7.4 or newer).

        Parameters
        ----------
        FUNC : name
            A function in the namespace (a dotted name such as mod.func too).
        ITERABLE_EXPR : expression
            The items, evaluated in the namespace; left out with --continue.
        -n N, --n-jobs N : int
            Workers. Default: the CPU count.
        --start-method M : {forkserver, fork, spawn, threading}
            How the workers start. Default: forkserver.
        --shared EXPR : expression
            Shared objects, handed to every call of FUNC before the item.
        --chunk-size K : int
            Items per batch. Default: adapted to the measured task times.
        --timeout SECONDS : float
            Seconds a task may run; one running longer fails with TaskTimeoutError naming
            its item. Default: no limit.
        --checkpoint PATH : file name
            A file keeping each result as it arrives (quote a name with spaces): the same
            line run again, after an error, a stop or a kernel restart, runs only what is
            missing. It holds pickles: use only checkpoints you trust.
        --progress {widget, text, none}
            The live view: the pool widget with its buttons, tqdm's bar, or nothing.
            Default: widget in a notebook, text elsewhere (where widget means text too).
            With --background, text shows nothing.
        --keep-alive
            Keep the pool and its workers after the map; the next --keep-alive map with the
            same -n, --start-method, --shared and --timeout runs in them, without starting
            workers again. Other settings replace the kept pool.
        --pool VAR : name
            Run in this nbpar.WorkerPool, made in Python, with its own settings (not with
            -n, --start-method, --shared, --keep-alive); the magic leaves it open.
        --background
            Return a handle at once: .result(timeout), .done(), .report(), .halt(),
            .resume(), .stop(now), .widget.
        -o VAR, --output VAR : name
            Also store the result list in VAR when the map is done.
        --continue
            Run only what the last stopped or interrupted %parallel_map left pending (with
            its checkpoint, if it had one); no ITERABLE_EXPR.

        Returns
        -------
        list
            The results, in input order (with --background, the handle).

        Raises
        ------
        UsageError
            A bad option or value, an unknown name, an expression that fails: one line.
        StoppedError
            STOP was pressed; the message says how to continue, `.report` holds the rest.
        MapInterrupted
            The kernel was interrupted: the map stopped at once (a KeyboardInterrupt), and
            the message says how to continue.
        Exception
            What FUNC raised, of its own type: shown with the cell's line and the worker's
            frames in your code.

        Examples
        --------
        ::

            %time r = %parallel_map -n 4 --timeout 60 --checkpoint runs.ckpt simulate seeds
            %parallel_map --pool pool --progress text score models
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
        func = _lookup(args.func, ns, "FUNC")
        if not callable(func):
            _usage(f"FUNC {args.func!r} is not callable (a {type(func).__name__})")
        expr = line[spans[len(words) - len(args.iterable)][0]:].strip() if args.iterable else ""
        args.checkpoint = _path(args.checkpoint) if args.checkpoint is not None else None
        if args.timeout is not None and not args.timeout > 0:
            _usage(f"--timeout needs a number of seconds > 0, got {args.timeout:g}")
        report = None
        if args.resume:
            if expr:
                _usage("--continue takes no ITERABLE_EXPR: it runs what the stopped map left")
            if args.checkpoint is not None:
                _usage("--continue takes no --checkpoint: it continues with the stopped map's "
                       "own (or run the line with the checkpoint again)")
            if self.stopped is None:
                _usage("--continue: no stopped %parallel_map to continue in this session")
            items = None
            if self.stopped_checkpoint is not None:
                args.checkpoint, items = self.stopped_checkpoint
            else:
                report = self.stopped
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
        pool, owned = self._pool(args, shared)
        return MapRun(self, pool, owned, func, items, report, args)

    def _pool(self, args, shared):
        """The pool the map runs in, and whether the magic closes it after the map."""
        if args.pool is not None:
            for option, name in _POOL_OPTIONS:
                if getattr(args, name) not in (None, False):
                    _usage(f"{option} does not go with --pool: {args.pool} runs with the "
                           f"settings it was made with")
            pool = _lookup(args.pool, self.shell.user_ns, "--pool")
            if not isinstance(pool, WorkerPool):
                _usage(f"--pool {args.pool!r} is not an nbpar.WorkerPool (a "
                       f"{type(pool).__name__})")
            if pool._closed:
                _usage(f"--pool {args.pool!r} is closed: it takes no new work")
            return pool, False
        settings = dict(n_jobs=args.n_jobs, start_method=args.start_method,
                        shared_objects=shared, task_timeout=args.timeout)
        if args.keep_alive and self.kept is not None:
            kept_settings, kept = self.kept
            if _same(kept_settings, settings) and not kept._closed:
                return kept, False
            self.release_kept()
        try:
            pool = WorkerPool(**settings, keep_alive=args.keep_alive)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"%parallel_map: {exc}") from None
        if args.keep_alive:
            self.kept = (settings, pool)
            return pool, False
        return pool, True

    def release_kept(self):
        """Close the pool kept by --keep-alive, if any (its workers retire)."""
        kept, self.kept = self.kept, None
        if kept is not None:
            kept[1].close()
            kept[1].join()


def _same(a: dict, b: dict) -> bool:
    """Pool settings that a kept pool serves: equal, and the very same shared objects."""
    return (a.keys() == b.keys() and a["shared_objects"] is b["shared_objects"]
            and all(a[k] == b[k] for k in a if k != "shared_objects"))


class MapRun:
    """One `%parallel_map`: its pool, its view, and how it ends (result, stop, interrupt)."""

    def __init__(self, magics, pool, owned, func, items, report, args):
        self.magics = magics
        self.pool, self.owned = pool, owned
        self.func, self.func_text = func, args.func
        self.items, self.report = items, report
        self.chunk_size = args.chunk_size
        self.checkpoint = args.checkpoint
        self.background = args.background
        self.output = args.output
        progress = args.progress or "widget"
        if progress == "widget" and not kernel.in_notebook():
            progress = "text"
        self.progress = progress
        # a pool given with --pool keeps its own settings; the timeout is this map's own
        self.options = ({"task_timeout": args.timeout}
                        if args.pool is not None and args.timeout is not None else {})
        self.resume = (f"%parallel_map{f' --pool {args.pool}' if args.pool else ''} "
                       f"--continue {args.func}")
        self.widget = None
        self._sink = None  # the pool's output sink while the terminal's is in its place

    def _show(self, live):
        if self.progress == "widget":
            from .widget import PoolWidget
            self.widget = PoolWidget.for_map(self.pool, live=live)
        elif self.progress == "text" and not kernel.in_notebook():
            self._sink = self.pool.on_output
            self.pool.on_output = _terminal_output

    def blocking(self):
        """The call: blocks the caller until the map ends (the buttons act meanwhile)."""
        self._show_or_abandon(live=False)
        return self.call(progress_bar=self.progress == "text")

    def _show_or_abandon(self, live):
        """Show the view; if that fails (or is interrupted), the map never starts and the
        magic's own pool is closed before the error goes on."""
        try:
            self._show(live)
        except BaseException:
            if self.owned:
                self.pool.terminate()
            raise

    def call(self, progress_bar=False):
        try:
            results = self.pool.map(self.func, self.items, chunk_size=self.chunk_size,
                                    report=self.report, checkpoint=self.checkpoint,
                                    progress_bar=progress_bar, **self.options)
        except BaseException as exc:  # noqa: BLE001 - each ending is handled in _end
            return self._end(exc)
        return self._end(None, results)

    def start_background(self) -> BackgroundMap:
        """The map in a thread; the returned handle's .result() waits for it."""
        self._show_or_abandon(live=True)
        handle = BackgroundMap(self)
        threading.Thread(target=handle._run, name="nbpar-parallel-map", daemon=True).start()
        return handle

    def _end(self, error, results=None):
        """Close the pool (if it is the magic's) and the view; return the results or raise
        one clear line."""
        pool = self.pool
        interrupted = isinstance(error, KeyboardInterrupt)
        stopped = interrupted or isinstance(error, StoppedError)
        try:
            if self.widget is not None:
                self.widget.close()  # the final view: the workers as the map left them
            if self._sink is not None:
                pool.on_output = self._sink
        finally:
            if self.owned:  # (the user's pool, or the kept one, stays open)
                if error is None or stopped:
                    pool.close()
                    pool.join()
                else:
                    pool.terminate()
        magics = self.magics
        if error is None:
            if self.report is not None and magics.stopped is self.report:
                magics.stopped = None  # continued: nothing is left to continue
            if self.checkpoint is not None and magics.stopped_checkpoint is not None \
                    and magics.stopped_checkpoint[0] == self.checkpoint:
                magics.stopped = magics.stopped_checkpoint = None
            if self.output:
                magics.shell.user_ns[self.output] = results
            return results
        if stopped:
            report = getattr(error, "report", None) or pool.report()
            magics.stopped = report
            magics.stopped_checkpoint = (None if self.checkpoint is None
                                         else (self.checkpoint, self.items))
            message = ended_early(report, "interrupted" if interrupted else "stopped",
                                  self.resume)
            if interrupted:
                raise MapInterrupted(message, report) from None
            raise StoppedError(message, report) from None
        raise kernel.show_user_frames(error)


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


def _lookup(name: str, ns: dict, what: str):
    """A name or dotted name in the user namespace (not evaluated), for FUNC or --pool."""
    head, *rest = name.split(".")
    if not head.isidentifier() or not all(part.isidentifier() for part in rest):
        _usage(f"{what} must be a name in the namespace, got {name!r}")
    if head in ns:
        obj = ns[head]
    else:
        import builtins
        if not hasattr(builtins, head):
            _usage(f"{what} {name!r} is not defined")
        obj = getattr(builtins, head)
    for part in rest:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            _usage(f"{what} {name!r}: no attribute {part!r}")
    return obj


def _path(word: str) -> str:
    """--checkpoint's PATH: as written, or a quoted string literal (for spaces); ~ expanded."""
    if word[:1] in ("'", '"'):
        try:
            word = ast.literal_eval(word)
        except (SyntaxError, ValueError):
            _usage(f"--checkpoint {word}: not a valid quoted file name")
        if not isinstance(word, str):
            _usage(f"--checkpoint {word!r}: not a file name")
    if not word:
        _usage("--checkpoint needs a file name")
    return os.path.expanduser(word)


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
    """`%load_ext nbpar`: register the magic."""
    ip.register_magics(ParallelMagics)


def unload(ip):
    """`%unload_ext nbpar`: close the pool the magic kept, if any."""
    magics = ip.magics_manager.registry.get("ParallelMagics")
    if magics is not None:
        magics.release_kept()

"""pandas' `apply` on an nbpar pool: `df.nbpar.apply(func, axis=1)`, `series.nbpar.map(func)`
and `df.groupby(key).nbpar.apply(func)`.

Importing this module registers the accessors (also `nbpar.register_pandas()`); `import nbpar`
alone imports no pandas. The frame is cut into chunks of whole rows (whole columns for axis=0,
whole groups for a groupby) and each chunk travels to a worker as one frame, where pandas' own
`apply` / `map` / `groupby(...).apply` runs on it; the chunks' results are concatenated in
order. So the result is pandas' own -- index, dtypes, column names -- as long as `func` treats
each row (column, group) on its own, which is what apply promises.

Each call is one `pool.map` over the chunks: the progress bar (or widget) counts chunks, STOP
ends the call with `nbpar.StoppedError` naming the rows done, and passing its `report` back
(`df.nbpar.apply(func, axis=1, report=err.report)`) runs only the chunks left.
"""

from __future__ import annotations

import functools
import math

import pandas as pd
from pandas.api.extensions import (register_dataframe_accessor,
                                   register_series_accessor)
from pandas.core.groupby import DataFrameGroupBy

from ..errors import StoppedError
from ..pool import WorkerPool
from .views import borrowed_pool, show

NAME = "nbpar"
CHUNKS_PER_WORKER = 8  # enough chunks for a live bar and a prompt STOP, few enough to be cheap
MIN_CHUNK_ROWS = 1000  # below this a chunk costs more to send than its rows take to run


# -- what runs in the workers: pandas' own call on one chunk
class _ChunkTask:
    """`call(chunk, func, **options)` on each chunk, named after the user's `func`: the
    widget, the reports and a continuation (`report=`) see `fare`, not this wrapper."""

    def __init__(self, call, func, **options):
        self.call, self.user_func, self.options = call, func, options
        inner = getattr(func, "func", func)  # a functools.partial: its function's name
        self.__module__ = getattr(inner, "__module__", None) or __name__
        self.__qualname__ = getattr(inner, "__qualname__", None) or type(inner).__name__

    def __call__(self, chunk):
        return self.call(chunk, self.user_func, **self.options)


def _apply_frame(chunk, func, *, axis, kwargs):
    what = "row" if axis == 1 else "column"
    alone = not kwargs.get("args") and all(k in _frame_apply_options() for k in kwargs)
    return chunk.apply(_naming(func, lambda r: f"{what} {r.name!r}", alone), axis=axis,
                       **kwargs)


@functools.cache
def _frame_apply_options() -> frozenset:
    """DataFrame.apply's own keywords; any other goes to the function."""
    import inspect
    return frozenset(inspect.signature(pd.DataFrame.apply).parameters) - {"self", "kwargs"}


def _map_series(chunk, func, *, na_action, kwargs):
    return chunk.map(_naming(func, lambda v: f"value {_short(v)}", not kwargs),
                     na_action=na_action, **kwargs)


def _apply_groups(chunk, func, *, by, options, kwargs):
    return chunk.groupby(by, **options).apply(_naming(func, lambda g: f"group {g.name!r}"),
                                              **kwargs)


def _naming(func, where, alone=False):
    """`func`, adding to what it raises a note naming the row, column, value or group it was
    called on (the chunk alone would be named otherwise). What pandas treats specially -- a
    name such as "sum", a NumPy ufunc, a mapping for map -- is left as it is. `alone`: pandas
    passes the object alone (no args, no keywords for func), and the wrapper, called once
    per row, takes no more (a quarter of the cost of one that forwards *args, **kwargs)."""
    import numpy as np
    if not callable(func) or isinstance(func, (type, np.ufunc)):
        return func

    def named(exc, obj):
        try:
            place = where(obj)
        except Exception:  # noqa: BLE001 - a raw row (an array) has no name
            place = "an item"
        exc.add_note(f"nbpar: {getattr(func, '__name__', 'func')} raised on {place}")

    if alone:
        @functools.wraps(func)
        def call_alone(obj):
            try:
                return func(obj)
            except Exception as exc:
                named(exc, obj)
                raise
        return call_alone

    @functools.wraps(func)
    def call(obj, *args, **kwargs):
        try:
            return func(obj, *args, **kwargs)
        except Exception as exc:
            named(exc, obj)
            raise
    return call


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _Runner:
    """One accessor call: chunks through a pool (the caller's, or one of its own)."""

    def __init__(self, n_jobs, pool, progress_bar, chunks, pool_options):
        if pool is not None and (n_jobs is not None or pool_options):
            raise TypeError("give pool= or the options of a new pool (n_jobs=, "
                            "start_method=, ...), not both")
        if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int)
                                   or chunks < 1):
            raise ValueError(f"chunks must be a whole number >= 1, got {chunks!r}")
        self.n_jobs, self.pool, self.progress_bar = n_jobs, pool, progress_bar
        self.chunks, self.pool_options = chunks, pool_options

    def count(self, length, workers) -> int:
        if self.chunks is not None:
            return max(1, min(self.chunks, length))
        by_size = math.ceil(length / MIN_CHUNK_ROWS)
        return max(1, min(workers * CHUNKS_PER_WORKER, by_size))

    def workers(self) -> int:
        if self.pool is not None:
            return self.pool.n_jobs
        from os import cpu_count
        return self.n_jobs or cpu_count() or 1

    def run(self, task, pieces, report, what, unit, size, again):
        """`pool.map(task, pieces)` (or the continuation of `report`); a STOP is re-raised
        naming the rows (or columns: `unit`, counted by `size(piece)`) done and how to
        continue (`again`)."""
        with borrowed_pool(self.pool,
                           lambda: WorkerPool(self.n_jobs, **self.pool_options)) as pool:
            view = None
            try:
                if self.progress_bar:
                    total = report.total if report is not None else len(pieces)
                    view = show(pool, total, report.done if report is not None else 0,
                                unit="chunk")
                if report is not None:
                    return pool.map(task, report=report)
                return pool.map(task, pieces, chunk_size=1)
            except StoppedError as err:
                stopped = err.report
                done = sum(size(piece) for piece in stopped.results.values())
                total = done + sum(size(piece) for piece in stopped.pending)
                raise StoppedError(
                    f"the {what} was stopped after {done} of {total} {unit} "
                    f"({stopped.done} of {stopped.total} chunks); continue it with {again}",
                    stopped) from None
            finally:
                if view is not None:
                    view.close()


def _axis_number(axis) -> int:
    if axis in (0, "index", "rows"):
        return 0
    if axis in (1, "columns"):
        return 1
    raise ValueError(f"No axis named {axis!r} for object type DataFrame")


def _rows(piece):
    return piece.shape[0]


def _columns(piece):
    return piece.shape[1]


def _split(obj, n, axis=0):
    """n contiguous chunks of `obj`'s rows (axis=0) or columns (axis=1), in order."""
    length = obj.shape[axis]
    bounds = [round(i * length / n) for i in range(n + 1)]
    if axis == 0:
        return [obj.iloc[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
    return [obj.iloc[:, a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _concat(results, axis=0):
    return results[0] if len(results) == 1 else pd.concat(results, axis=axis)


@register_dataframe_accessor(NAME)
class FrameAccessor:
    """`df.nbpar.apply(func, axis=0, ...)`: DataFrame.apply on an nbpar pool."""

    def __init__(self, frame):
        self._frame = frame

    def apply(self, func, axis=0, *, n_jobs=None, pool=None, progress_bar=True, chunks=None,
              report=None, args=(), **kwargs):
        """DataFrame.apply(func, axis, args=..., **kwargs) with rows (axis=1) or columns
        (axis=0) cut into chunks that run on `pool` (or on a new pool of `n_jobs` workers,
        with the other WorkerPool options given here)."""
        pool_options = _pop_pool_options(kwargs)
        axis = _axis_number(axis)
        runner = _Runner(n_jobs, pool, progress_bar, chunks, pool_options)
        frame = self._frame
        if args:
            kwargs["args"] = args
        if frame.shape[1 - axis] == 0:  # nothing to cut: pandas' own answer
            return frame.apply(func, axis=axis, **kwargs)
        cut = 1 - axis  # axis=1 calls func per row: cut rows; axis=0: cut columns
        pieces = [] if report is not None else _split(
            frame, runner.count(frame.shape[cut], runner.workers()), cut)
        task = _ChunkTask(_apply_frame, func, axis=axis, kwargs=kwargs)
        results = runner.run(task, pieces, report, f"apply(axis={axis})",
                             "rows" if cut == 0 else "columns", _rows if cut == 0 else _columns,
                             f"df.nbpar.apply(func, axis={axis}, report=err.report)")
        if cut == 0:
            return _concat(results)
        # per column: a scalar each gives a Series indexed by column (the chunks stack), a
        # Series each gives a frame of those columns (the chunks sit side by side)
        return _concat(results, axis=0 if isinstance(results[0], pd.Series) else 1)


@register_series_accessor(NAME)
class SeriesAccessor:
    """`series.nbpar.map(func)`: Series.map on an nbpar pool."""

    def __init__(self, series):
        self._series = series

    def map(self, func, na_action=None, *, n_jobs=None, pool=None, progress_bar=True,
            chunks=None, report=None, **kwargs):
        """Series.map(func, na_action, **kwargs) in chunks on `pool` (or a new pool)."""
        pool_options = _pop_pool_options(kwargs)
        runner = _Runner(n_jobs, pool, progress_bar, chunks, pool_options)
        series = self._series
        if len(series) == 0:
            return series.map(func, na_action=na_action, **kwargs)
        pieces = [] if report is not None else _split(
            series, runner.count(len(series), runner.workers()))
        task = _ChunkTask(_map_series, func, na_action=na_action, kwargs=kwargs)
        return _concat(runner.run(task, pieces, report, "map", "rows", _rows,
                                  "series.nbpar.map(func, report=err.report)"))


class GroupByAccessor:
    """`df.groupby(key).nbpar.apply(func)`: GroupBy.apply on an nbpar pool, whole groups per
    chunk. The groupby must be by column names or index levels (so that a worker can group
    its chunk the same way), without a column selection."""

    def __init__(self, groupby):
        self._groupby = groupby

    def apply(self, func, *args, n_jobs=None, pool=None, progress_bar=True, chunks=None,
              report=None, **kwargs):
        pool_options = _pop_pool_options(kwargs)
        gb = self._groupby
        frame, by, options = _regroup(gb)
        runner = _Runner(n_jobs, pool, progress_bar, chunks, pool_options)
        if args:
            func = functools.partial(func, *args)
        n_groups = gb.ngroups
        if report is None and not n_groups:
            return gb.apply(func, **kwargs)
        n = report.total if report is not None else runner.count(n_groups, runner.workers())
        positions = _group_chunks(gb.ngroup().to_numpy(), n_groups, n)
        pieces = [] if report is not None else [frame.iloc[rows] for rows in positions]
        task = _ChunkTask(_apply_groups, func, by=by, options=options, kwargs=kwargs)
        results = runner.run(task, pieces, report, "groupby apply", "rows", _rows,
                             "df.groupby(...).nbpar.apply(func, report=err.report)")
        result = _concat(results)
        if not options["group_keys"] and all(
                isinstance(r, (pd.Series, pd.DataFrame)) and r.index.equals(frame.index[rows])
                for r, rows in zip(results, positions)):
            # transform-like without group keys: pandas gives the rows in their own order
            import numpy as np
            result = result.iloc[np.argsort(np.concatenate(positions), kind="stable")]
        return result


def _group_chunks(numbers, n_groups, n) -> list:
    """The row positions of n chunks of whole groups (group numbers in order), none empty;
    the same for the same groupby, so a continuation finds the chunks of the first call."""
    bounds = [round(i * n_groups / n) for i in range(n + 1)]
    chunks = [((numbers >= a) & (numbers < b)).nonzero()[0] for a, b in zip(bounds, bounds[1:])]
    return [rows for rows in chunks if len(rows)]


def _regroup(gb):
    """The frame and the arguments that group a chunk of it as `gb` groups the whole."""
    if getattr(gb, "_selection", None) is not None:
        raise TypeError("nbpar's groupby apply takes a groupby of the whole frame "
                        "(df.groupby(key)), not of selected columns: select inside func")
    keys = gb.keys
    level = gb.level
    labels = keys if isinstance(keys, list) else [keys]
    frame = gb.obj
    if level is None and not all(
            isinstance(k, str | int | tuple) and (k in frame.columns or k in frame.index.names)
            for k in labels):
        raise TypeError("nbpar's groupby apply groups by column names or index levels: "
                        f"{keys!r} is neither (a worker receives only its chunk of the frame)")
    options = dict(level=level, sort=gb.sort, group_keys=gb.group_keys, dropna=gb.dropna,
                   observed=gb.observed, as_index=gb.as_index)
    return frame, (None if level is not None else keys), options


_POOL_OPTIONS = ("start_method", "shared_objects", "worker_init", "worker_exit",
                 "task_timeout", "max_tasks_per_worker", "scheduler", "log_level", "backend",
                 "client")


def _pop_pool_options(kwargs) -> dict:
    return {name: kwargs.pop(name) for name in _POOL_OPTIONS if name in kwargs}


class _GroupByDescriptor:
    """pandas registers accessors on DataFrame and Series publicly, not on GroupBy: this
    descriptor plays the same part there (an accessor made per access, as pandas does)."""

    def __get__(self, groupby, owner=None):
        if groupby is None:
            return GroupByAccessor
        return GroupByAccessor(groupby)


def register():
    """The accessors on DataFrame and Series are registered when this module is imported;
    this adds the one on DataFrameGroupBy (idempotent)."""
    if not isinstance(DataFrameGroupBy.__dict__.get(NAME), _GroupByDescriptor):
        setattr(DataFrameGroupBy, NAME, _GroupByDescriptor())


register()

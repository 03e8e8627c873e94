"""The pandas accessors: one suite run over pandas' own calls and nbpar's, each result checked
against a frame written out by hand (index, dtypes, column names), then nbpar against pandas on
larger random frames; chunking, STOP and continuing."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import eco_tasks
import nbpar
from waiting import Background, wait_for

nbpar.register_pandas()


@pytest.fixture
def pool():
    with nbpar.WorkerPool(2) as p:
        yield p


@pytest.fixture(params=["pandas", "nbpar"])
def impl(request, pool):
    """The calls under test: pandas' own, or the accessor's (small chunks, so that even the
    small frames here are cut)."""
    if request.param == "pandas":
        return dict(apply=lambda df, f, **kw: df.apply(f, **kw),
                    map=lambda s, f, **kw: s.map(f, **kw),
                    gapply=lambda gb, f, **kw: gb.apply(f, **kw))
    opts = dict(pool=pool, progress_bar=False, chunks=3)
    return dict(apply=lambda df, f, **kw: df.nbpar.apply(f, **kw, **opts),
                map=lambda s, f, **kw: s.nbpar.map(f, **kw, **opts),
                gapply=lambda gb, f, **kw: gb.nbpar.apply(f, **kw, **opts))


@pytest.fixture
def frame():
    return pd.DataFrame({"a": [1, 2, 3, 4, 5], "b": [0.1, 0.9, 0.2, 0.8, 0.7],
                         "k": ["x", "y", "x", "z", "y"]},
                        index=pd.Index([50, 40, 30, 20, 10], name="id"))


def test_apply_rows_to_scalars(impl, frame):
    got = impl["apply"](frame, eco_tasks.row_score, axis=1)
    expected = pd.Series([1.0, 5.0, 5.0, 9.0, 11.0], index=frame.index)
    pd.testing.assert_series_equal(got, expected)


def test_apply_rows_to_series_gives_a_frame(impl, frame):
    got = impl["apply"](frame, lambda r: pd.Series({"double": r["a"] * 2, "big": r["b"] > 0.5}),
                        axis=1)
    expected = pd.DataFrame({"double": [2, 4, 6, 8, 10],
                             "big": [False, True, False, True, True]}, index=frame.index)
    pd.testing.assert_frame_equal(got, expected)


def test_apply_rows_with_args_and_result_type(impl, frame):
    got = impl["apply"](frame[["a", "b"]], lambda r, n: [r["a"] * n, r["b"]], axis=1,
                        args=(10,), result_type="expand")
    expected = pd.DataFrame({0: [10.0, 20.0, 30.0, 40.0, 50.0], 1: [0.1, 0.9, 0.2, 0.8, 0.7]},
                            index=frame.index)
    pd.testing.assert_frame_equal(got, expected)


def test_apply_rows_with_a_keyword_for_the_function_and_raw_rows(impl, frame):
    got = impl["apply"](frame[["a", "b"]], lambda r, scale: r[0] * scale + r[1], axis=1,
                        raw=True, scale=10)
    pd.testing.assert_series_equal(got, pd.Series([10.1, 20.9, 30.2, 40.8, 50.7],
                                                  index=frame.index))


def test_apply_columns(impl, frame):
    got = impl["apply"](frame[["a", "b"]], lambda c: c.max() - c.min())
    pd.testing.assert_series_equal(got, pd.Series([4.0, 0.8], index=["a", "b"]),
                                   check_exact=False)
    doubled = impl["apply"](frame[["a", "b"]], lambda c: c * 2, axis=0)
    pd.testing.assert_frame_equal(doubled, frame[["a", "b"]] * 2)


def test_series_map(impl, frame):
    got = impl["map"](frame["k"], str.upper)
    pd.testing.assert_series_equal(got, pd.Series(list("XYXZY"), index=frame.index, name="k",
                                                  dtype=frame["k"].dtype))
    with_na = pd.Series([1.0, None, 3.0], name="v")
    got = impl["map"](with_na, lambda x: x * 10, na_action="ignore")
    pd.testing.assert_series_equal(got, pd.Series([10.0, None, 30.0], name="v"))


def test_groupby_apply_to_scalars(impl, frame):
    got = impl["gapply"](frame.groupby("k"), lambda g: g["a"].sum())
    expected = pd.Series([4, 7, 4], index=pd.Index(["x", "y", "z"], name="k"))
    pd.testing.assert_series_equal(got, expected)


def test_groupby_apply_to_frames_keeps_group_keys(impl, frame):
    got = impl["gapply"](frame.groupby("k"), lambda g: g[["a"]] - g["a"].min())
    index = pd.MultiIndex.from_tuples([("x", 50), ("x", 30), ("y", 40), ("y", 10), ("z", 20)],
                                      names=["k", "id"])
    pd.testing.assert_frame_equal(got, pd.DataFrame({"a": [0, 2, 0, 3, 0]}, index=index))


def test_groupby_transform_like_without_group_keys_keeps_row_order(impl, frame):
    got = impl["gapply"](frame.groupby("k", group_keys=False), lambda g: g[["a"]] * 2)
    pd.testing.assert_frame_equal(got, frame[["a"]] * 2)


@pytest.mark.parametrize("shape", ["scalar", "series", "frame"])
def test_nbpar_equals_pandas_on_a_larger_frame(pool, shape):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.integers(0, 100, 20_000), "b": rng.random(20_000),
                       "k": rng.integers(0, 50, 20_000)},
                      index=pd.Index(rng.permutation(20_000) * 7, name="id"))
    func = {"scalar": eco_tasks.row_score,
            "series": lambda r: pd.Series({"s": r["a"] + r["b"], "n": int(r["k"])}),
            "frame": None}[shape]
    if func is not None:
        mine = df.nbpar.apply(func, axis=1, pool=pool, progress_bar=False)
        theirs = df.apply(func, axis=1)
    else:
        def func(g):
            return g.nlargest(2, "b")
        mine = df.groupby("k").nbpar.apply(func, pool=pool, progress_bar=False)
        theirs = df.groupby("k").apply(func)
    (pd.testing.assert_frame_equal if isinstance(theirs, pd.DataFrame)
     else pd.testing.assert_series_equal)(mine, theirs)


def test_large_frames_travel_in_chunks(pool):
    df = pd.DataFrame({"a": np.arange(100_000), "b": np.linspace(0, 1, 100_000)})
    out = df.nbpar.apply(eco_tasks.row_score, axis=1, pool=pool, progress_bar=False)
    assert len(out) == 100_000
    assert pool.report().total == 16  # 8 chunks per worker, not 100,000 items
    assert df["a"].nbpar.map(str, pool=pool, progress_bar=False, chunks=5).tolist() == [
        str(i) for i in range(100_000)]
    assert pool.report().total == 5


def test_an_error_in_func_is_raised(pool, frame):
    def bad(row):
        if row["a"] == 4:
            raise KeyError(f"no price for row {row.name}")
        return 1
    with pytest.raises(KeyError, match="no price for row 20") as raised:
        frame.nbpar.apply(bad, axis=1, pool=pool, progress_bar=False, chunks=2)
    assert "nbpar: bad raised on row 20" in raised.value.__notes__  # not only its chunk

    def shout(word):
        return word.upper()
    with pytest.raises(AttributeError) as raised:
        pd.Series(["a", "b", 3, "d"]).nbpar.map(shout, pool=pool, progress_bar=False)
    assert "nbpar: shout raised on value 3" in raised.value.__notes__

    def group_mean(g):
        return int(g["a"].sum()) / (len(g) - 1)  # group z has one row
    with pytest.raises(ZeroDivisionError) as raised:
        frame.groupby("k").nbpar.apply(group_mean, pool=pool, progress_bar=False)
    assert "nbpar: group_mean raised on group 'z'" in raised.value.__notes__


def test_bad_options_are_refused(pool, frame):
    with pytest.raises(TypeError, match="pool= or the options"):
        frame.nbpar.apply(len, axis=1, pool=pool, n_jobs=2)
    with pytest.raises(ValueError, match="chunks must be"):
        frame.nbpar.apply(len, axis=1, pool=pool, chunks=0)
    with pytest.raises(TypeError, match="column names or index levels"):
        frame.groupby(frame["a"] % 2).nbpar.apply(len, pool=pool)


def test_stop_names_the_rows_done_and_the_apply_continues(pool):
    df = pd.DataFrame({"a": np.arange(2000), "b": np.zeros(2000)})
    running = Background(lambda: df.nbpar.apply(eco_tasks.slow_row, axis=1, pool=pool,
                                                progress_bar=False, chunks=40))
    wait_for(lambda: pool.report().status == "running" and pool.report().done >= 4,
             what="4 chunks done")
    pool.stop()
    running.join()
    err = running.error
    assert isinstance(err, nbpar.StoppedError), err
    done = err.report.done
    assert 4 <= done < 40
    assert f"after {done * 50} of 2000 rows ({done} of 40 chunks)" in str(err)
    out = df.nbpar.apply(eco_tasks.slow_row, axis=1, pool=pool, progress_bar=False,
                         report=err.report)
    pd.testing.assert_series_equal(out, (df["a"] + 1.0).rename(None))  # rows of int and float
    assert pool.report().total == 40 and pool.report().done == 40


def test_a_stopped_groupby_apply_continues_in_row_order(pool):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": np.arange(3000), "k": rng.integers(0, 300, 3000)})
    grouped = df.groupby("k", group_keys=False)
    running = Background(lambda: grouped.nbpar.apply(eco_tasks.slow_double, pool=pool,
                                                     progress_bar=False, chunks=30))
    wait_for(lambda: pool.report().status == "running" and pool.report().done >= 3,
             what="3 chunks done")
    pool.stop()
    running.join()
    err = running.error
    assert isinstance(err, nbpar.StoppedError), err
    assert re.search(r"groupby apply was stopped after \d+ of 3000 rows \(\d+ of 30 chunks\)",
                     str(err)), str(err)
    out = grouped.nbpar.apply(eco_tasks.slow_double, pool=pool, progress_bar=False,
                              report=err.report)
    pd.testing.assert_frame_equal(out, df[["a"]] * 2)  # pandas' own order: the rows'

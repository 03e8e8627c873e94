"""In a real kernel, the ecosystem layers show the pool widget: process_map, a joblib call
(scikit-learn's n_jobs) and a pandas apply each display one, which ends finished with the
call's own counts."""

from __future__ import annotations

import re


def _progress(kernel) -> str:
    texts = [s["value"] for _, s in kernel.find("HTMLModel") if "</b> / " in s.get("value", "")]
    return re.sub("<[^>]+>", "", texts[-1]) if texts else ""


def test_process_map_shows_the_widget(live_kernel):
    cell = live_kernel.run("import nbpar\n"
                           "nbpar.process_map(abs, range(-30, 0), max_workers=2) == "
                           "list(range(30, 0, -1))")
    assert cell.error is None, cell.error
    assert cell.result == "True"
    assert len(cell.widget_ids) == 1
    assert "finished" in live_kernel.header() and "builtins.abs" in live_kernel.header()
    assert _progress(live_kernel).startswith("30 / 30")


def test_a_joblib_call_shows_the_widget_with_its_task_count(live_kernel):
    cell = live_kernel.run(
        "import joblib, nbpar\n"
        "steer = nbpar.register_joblib()\n"
        "with joblib.parallel_config(backend='nbpar', n_jobs=2):\n"
        "    out = joblib.Parallel(batch_size=1)(joblib.delayed(abs)(-i) for i in range(25))\n"
        "steer.close()\n"
        "out == list(range(25))")
    assert cell.error is None, cell.error
    assert cell.result == "True"
    assert len(cell.widget_ids) == 1
    header = live_kernel.header()
    assert "joblib.Parallel" in header and "finished" in header and "2 workers" in header
    assert _progress(live_kernel).startswith("25 / 25")


def test_a_pandas_apply_shows_the_widget_counting_chunks(live_kernel):
    cell = live_kernel.run(
        "import pandas as pd, nbpar\n"
        "nbpar.register_pandas()\n"
        "df = pd.DataFrame({'a': range(5000)})\n"
        "out = df.nbpar.apply(lambda r: r['a'] * 2, axis=1, n_jobs=2, chunks=6)\n"
        "out.equals(df.apply(lambda r: r['a'] * 2, axis=1))")
    assert cell.error is None, cell.error
    assert cell.result == "True"
    assert len(cell.widget_ids) == 1
    assert "finished" in live_kernel.header()
    assert _progress(live_kernel).startswith("6 / 6")

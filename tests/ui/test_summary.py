"""What a map leaves in its cell when it ends: a plain summary (text/plain and text/html) that
a saved notebook, nbconvert and GitHub's viewer show, and widget state saved in its final
form -- checked on notebooks run by nbclient and on a live kernel."""

import re

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.timeout(180)

CELLS = [
    "%load_ext nbpar",
    "import time\ndef shout(x):\n    time.sleep(0.2)\n    print('hello from', x)\n"
    "    return x + 1",
    "%parallel_map -n 2 shout range(4)",
    "import nbpar\npool = nbpar.WorkerPool(2)\npool",
    "r = pool.map(shout, range(6))",
    "r = pool.map(shout, range(5), progress_bar=True)",
    "pool.close(); pool.join()",
]


def _summaries(cell):
    return [o.data for o in cell.outputs
            if o.output_type == "display_data" and "text/html" in o.data]


def _headers(models):
    return [re.sub("<[^>]+>", "", m["state"]["value"]) for m in models.values()
            if m["model_name"] == "HTMLModel"
            and str(m["state"].get("value", "")).startswith("<b>nbpar</b>")]


def test_an_executed_notebook_keeps_summaries_and_final_widget_state(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, kernel_name="python3", timeout=90, store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nb = nbformat.reads(nbformat.writes(nb), 4)  # what a saved file holds

    (fallback,) = [o.data["text/plain"] for o in nb.cells[2].outputs
                   if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert "idle" not in fallback and "summary" in fallback  # no stale first draw
    (magic,) = _summaries(nb.cells[2])
    text = magic["text/plain"]
    assert "shout · 2 workers" in text and "finished: 4/4 done" in text, text
    assert "2 workers (2 retired)" in text  # retired at the map's end: not "dead"
    assert "worker output (4 lines)" in text and "] hello from 3" in text
    assert "<b style='color:#2e7d32'>finished</b>" in magic["text/html"]
    assert "hello from 3" in magic["text/html"]

    assert _summaries(nb.cells[3]) == []  # the pool shown before any map: no summary
    (later,) = _summaries(nb.cells[4])  # the shown pool's map ended in this cell
    assert "finished: 6/6 done" in later["text/plain"]
    (bar,) = _summaries(nb.cells[5])  # the tqdm bar's (one summary, not one per view)
    assert "finished: 5/5 done" in bar["text/plain"]

    models = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    headers = _headers(models)
    assert len(headers) == 2 and all(h.endswith("finished") for h in headers), headers
    bars = sorted((m["state"]["value"], m["state"]["max"]) for m in models.values()
                  if m["model_name"] == "IntProgressModel")
    assert bars == [(4, 4), (5, 5)]  # the final draws (the pool view: its latest map)


def test_a_failed_map_names_its_first_error_in_the_summary(live_kernel):
    kernel = live_kernel
    kernel.run("def picky(x):\n    print('trying', x)\n    if x == 2:\n"
               "        raise ValueError('two is bad')\n    return x")
    cell = kernel.run("%parallel_map -n 1 --chunk-size 1 picky range(4)")
    assert cell.error is not None and cell.error["ename"] == "ValueError"
    (data,) = [m["content"]["data"] for m in cell.messages
               if m["msg_type"] == "display_data" and "text/html" in m["content"]["data"]]
    text = data["text/plain"]
    # (item 3 may have run already, queued behind item 2 on the one worker)
    assert re.search(r"failed: [23]/4 done, 1 failed, [01] pending", text), text
    assert "item 2 (index 2) on worker 0: ValueError: two is bad" in text
    assert "[worker 0] trying 2" in text
    assert "two is bad" in data["text/html"] and "#c62828" in data["text/html"]
    assert kernel.header().endswith("failed")  # the model's final state, as a frontend has it
    buttons = [s for _, s in kernel.find("ButtonModel") if s.get("description") == "HALT"]
    assert buttons[-1]["disabled"] is True

"""A small notebook run top to bottom by nbclient: the result and the worker output land in
the cell that ran the map (in its widget's output pane, saved with the widget state)."""

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.timeout(120)

CELLS = [
    "%load_ext nbpar",
    "def shout(x):\n    print('hello from', x)\n    return x + 1",
    "%parallel_map -n 2 shout range(3)",
    "%parallel_map --start-method spawn -n 1 shout [10]",
]


def test_notebook_runs_and_worker_prints_land_in_the_cell(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    client = NotebookClient(nb, kernel_name="python3", timeout=60, store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    models = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    for cell, expected in ((nb.cells[2], "[1, 2, 3]"), (nb.cells[3], "[11]")):
        (result,) = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert result.data["text/plain"] == expected
        (shown,) = [o.data["application/vnd.jupyter.widget-view+json"]["model_id"]
                    for o in cell.outputs if o.output_type == "display_data"
                    and "application/vnd.jupyter.widget-view+json" in o.data]
        pane = "".join(o["text"] for model_id in _descendants(models, shown)
                       if models[model_id]["model_name"] == "OutputModel"
                       for o in models[model_id]["state"].get("outputs", []))
        assert pane.count("hello from") == len(eval(expected)), pane  # noqa: S307
        assert "[worker 0] hello from" in pane
        assert "hello" not in "".join(o.get("text", "") for o in cell.outputs)  # no stream


def _descendants(models, model_id):
    todo, found = [model_id], []
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(c.removeprefix("IPY_MODEL_")
                    for c in models.get(current, {}).get("state", {}).get("children", []))
    return found

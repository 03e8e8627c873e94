"""The live pool widget in JupyterLab, in headless Chromium: the buttons act while the cell
that runs `%parallel_map` still shows [*], and the toolbar's interrupt stops the map at once.

Each task appends its start time to a file, so "nothing starts while halted" is read from the
work itself. A cell is judged finished by its prompt turning from [*] to [n], never by the
kernel's status. Screenshots go to artifacts/; NBPAR_UPDATE_DOCS=1 also refreshes the README's
docs/widget.png from the mid-run one.
"""

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

DOCS = Path(__file__).resolve().parents[2] / "docs"
CELLS = [
    "%load_ext nbpar",
    "import time\n"
    "RECORD = {record!r}\n"
    "def slow(x):\n"
    "    with open(RECORD, 'a') as f:\n"
    "        f.write(f'{{time.time()}} {{x}}\\n')\n"
    "    print('working on', x)\n"
    "    time.sleep(0.4)\n"
    "    return x * x",
    "r = %parallel_map -n 2 --chunk-size 1 slow range(200)\nlen(r)",
    "r = %parallel_map -n 2 --chunk-size 1 slow range(200)",
    "1 + 1",
]


def write_notebook(path, record):
    cells = [{"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {},
              "outputs": [], "source": source.format(record=str(record))}
             for i, source in enumerate(CELLS)]
    path.write_text(json.dumps({
        "cells": cells, "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                    "language": "python"}}}))


class Notebook:
    def __init__(self, page):
        self.page = page

    def cell(self, n):
        return self.page.locator(".jp-Notebook .jp-Cell").nth(n)

    def prompt(self, n) -> str:
        return self.cell(n).locator(".jp-InputPrompt").inner_text().strip()

    def run(self, n):
        self.cell(n).locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Control+Enter")
        self.page.wait_for_function(  # the cell was taken: its prompt shows [*] or a number
            "([sel, n]) => { const p = document.querySelectorAll(sel)[n]"
            "?.querySelector('.jp-InputPrompt');"
            " return p && /\\[(\\*|\\d+)\\]/.test(p.innerText) }",
            arg=[".jp-Notebook .jp-Cell", n])

    def wait_done(self, n, timeout=60_000):
        self.page.wait_for_function(
            "([sel, n]) => /\\[\\d+\\]/.test(document.querySelectorAll(sel)[n]"
            ".querySelector('.jp-InputPrompt').innerText)",
            arg=[".jp-Notebook .jp-Cell", n], timeout=timeout)

    def button(self, n, label):
        # the text ends with the label (an icon glyph may come first): STOP is not STOP NOW
        return self.cell(n).locator("button.widget-button",
                                    has_text=re.compile(rf"(^|\W){label}$"))

    def widget_text(self, n) -> str:
        return self.cell(n).locator(".jp-Cell-outputArea").inner_text()

    def wait_until(self, predicate, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached"
            self.page.wait_for_timeout(50)


def starts(record):
    return [float(line.split()[0]) for line in record.read_text().splitlines()]


@pytest.fixture
def notebook(lab, tmp_path, request):
    server, page = lab
    record = tmp_path / "starts.txt"
    record.touch()
    name = f"{request.node.name}.ipynb"
    write_notebook(server.root / name, record)
    page.goto(f"{server.url}/lab/tree/{name}?reset&token={server.token}")
    page.get_by_text(re.compile(r"\(ipykernel\) \| Idle")).wait_for(timeout=60_000)
    nb = Notebook(page)
    for n in (0, 1):
        nb.run(n)
        nb.wait_done(n)
    return nb, record


def test_halt_resume_stop_while_the_cell_runs(notebook, artifacts):
    nb, record = notebook
    nb.run(2)
    nb.wait_until(lambda: len(starts(record)) >= 4)
    nb.wait_until(lambda: "working on" in nb.widget_text(2))
    nb.cell(2).screenshot(path=str(artifacts / "widget-running.png"))
    if os.environ.get("NBPAR_UPDATE_DOCS") or not (DOCS / "widget.png").exists():
        shutil.copy(artifacts / "widget-running.png", DOCS / "widget.png")  # the README's

    assert nb.prompt(2) == "[*]:"
    nb.button(2, "HALT").click()
    # halted, and what was already handed to the workers has finished: no busy worker left
    nb.wait_until(lambda: "halted" in nb.widget_text(2)
                  and "\tbusy\t" not in nb.widget_text(2))
    quiet = time.time()
    nb.page.wait_for_timeout(1500)  # a window in which nothing may start
    assert nb.prompt(2) == "[*]:"
    count = len(starts(record))
    resumed = time.time()
    nb.button(2, "RESUME").click()
    nb.wait_until(lambda: len(starts(record)) >= count + 4)

    assert nb.prompt(2) == "[*]:"
    nb.button(2, "STOP").click()
    nb.wait_done(2)
    times = starts(record)
    assert not [t for t in times if quiet <= t <= resumed], "a task started while halted"
    assert [t for t in times if t > resumed], "nothing started after RESUME"
    assert len(times) < 200
    output = nb.widget_text(2)
    assert re.search(r"StoppedError: the map was stopped after \d+ of 200 items", output)
    assert "continue it with %parallel_map --continue slow" in output
    assert "Traceback" not in output
    assert "stopped" in nb.cell(2).locator(".widget-html-content").first.inner_text()
    nb.cell(2).screenshot(path=str(artifacts / "widget-stopped.png"))


def test_toolbar_interrupt_stops_the_map_now(notebook, artifacts):
    nb, record = notebook
    nb.run(3)
    nb.wait_until(lambda: len(starts(record)) >= 2)
    assert nb.prompt(3) == "[*]:"
    interrupted = time.monotonic()
    nb.page.locator("[data-command='notebook:interrupt-kernel']").first.click()
    nb.wait_done(3, timeout=10_000)
    took = time.monotonic() - interrupted
    assert took < 3.0, f"the cell ended {took:.1f} s after the interrupt"
    output = nb.widget_text(3)
    assert re.search(r"KeyboardInterrupt: the map was interrupted after \d+ of 200 items", output)
    assert "continue it with %parallel_map --continue slow" in output
    nb.cell(3).screenshot(path=str(artifacts / "widget-interrupted.png"))
    nb.run(4)  # the kernel is healthy
    nb.wait_done(4)
    assert "2" in nb.widget_text(4)

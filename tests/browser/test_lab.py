"""The live pool widget in JupyterLab, in headless Chromium: the buttons act while the cell
that runs `%parallel_map` -- or a plain, blocking `pool.map(..., progress_bar=True)` -- still
shows [*], and the toolbar's interrupt stops the map at once. What a map leaves in its cell
(the summary, the widgets' final state) is read back from the notebook file JupyterLab saved.

Each task appends its start time to a file, so "nothing starts while halted" is read from the
work itself. A cell is judged finished by its prompt turning from [*] to [n], never by the
kernel's status. A button's latency is timed in the page, from the click event to the moment
the widget shows its effect; the figures go to artifacts/lab-latencies.json. Screenshots go
to artifacts/; NBPAR_UPDATE_DOCS=1 also refreshes the README's docs/widget.png from the
mid-run one.
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


def write_notebook(path, record, sources=CELLS):
    cells = [{"cell_type": "code", "execution_count": None, "id": f"cell{i}", "metadata": {},
              "outputs": [], "source": source.format(record=str(record))}
             for i, source in enumerate(sources)]
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


# -- a plain blocking `pool.map(..., progress_bar=True)`, steered from the pool's widget

PLAIN_CELLS = [
    "import time\n"
    "import nbpar\n"
    "RECORD = {record!r}\n"
    "def work(x):\n"
    "    with open(RECORD, 'a') as f:\n"
    "        f.write(f'{{time.time()}} {{x}}\\n')\n"
    "    print('working on', x)\n"
    "    time.sleep(0.1)\n"
    "    if x < 0:\n"
    "        raise ValueError(f'{{x}} is negative')\n"
    "    return x * x\n"
    "pool = nbpar.WorkerPool(2)\n"
    "pool",
    "r = pool.map(work, range(300), progress_bar=True)",
    "r = pool.map(work, [*range(20), -1, *range(20, 40), -2], progress_bar=True,\n"
    "             on_error='collect')",
    "r = pool.map(work, range(6), progress_bar=True)\nlen(r)",
]
LATENCY_LIMIT = 300  # ms from a click to the widget showing its effect
WATCH = """([button, cell, label, pattern]) => {
    // times (page clock) of the click event and of the first redraws showing its effect
    const re = new RegExp(pattern);
    const watch = window.nbparWatch = {clicked: null, epoch: null, note: null, header: null};
    const look = () => {
        if (watch.clicked === null) return;
        const header = cell.querySelector('.widget-html-content')?.innerText ?? '';
        if (watch.header === null && re.test(header)) watch.header = performance.now();
        if (watch.note === null && cell.innerText.includes(label + ' pressed'))
            watch.note = performance.now();
        if (watch.header !== null && watch.note !== null) observer.disconnect();
    };
    const observer = new MutationObserver(look);
    observer.observe(cell, {subtree: true, childList: true, characterData: true});
    button.addEventListener('click', () => {
        watch.clicked = performance.now();
        watch.epoch = Date.now();
    }, {capture: true, once: true});
}"""


def timed_click(nb, n, label, pattern):
    """Click the widget's button `label` in cell `n` and wait for its header to match
    `pattern`: (ms to that header, ms to the widget's "pressed" note, the click's epoch s)."""
    button = nb.button(n, label)
    nb.page.evaluate(WATCH, [button.element_handle(), nb.cell(n).element_handle(), label,
                             pattern])
    button.click()
    nb.page.wait_for_function("() => window.nbparWatch.header !== null"
                              " && window.nbparWatch.note !== null", timeout=10_000)
    watch = nb.page.evaluate("() => window.nbparWatch")
    return (watch["header"] - watch["clicked"], watch["note"] - watch["clicked"],
            watch["epoch"] / 1000)


def record_latencies(artifacts, test, figures):
    path = artifacts / "lab-latencies.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    known[test] = {k: round(v, 1) for k, v in figures.items()}
    path.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
    print(f"{test}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in figures.items()))


class HeldClicks:
    """The page's kernel connection, routed through Playwright: while `holding`, a widget
    click is kept from the kernel until `release()` -- a click made while the page still
    showed a map running that reaches the kernel after the map ended, as a slow network or
    a busy browser would deliver it."""

    def __init__(self, page):
        self.holding = False
        self.held = []
        page.route_web_socket(re.compile(r"/api/kernels/[^/?]+/channels"), self._route)

    def _route(self, ws):
        server = ws.connect_to_server()

        def to_server(message):
            raw = message.encode() if isinstance(message, str) else message
            if self.holding and b'"event":"click"' in raw:
                self.held.append((server, message))
            else:
                server.send(message)

        ws.on_message(to_server)

    def release(self):
        self.holding = False
        for server, message in self.held:
            server.send(message)
        self.held.clear()


@pytest.fixture
def open_plain(lab, tmp_path, request):
    """Opens a notebook of PLAIN_CELLS and shows its pool in cell 0: `open_plain(hold)` gives
    (notebook, starts record, HeldClicks or None, the notebook's path). The kernel connection
    goes through Playwright only with `hold=True`: the latency test talks to it directly."""
    server, page = lab

    def open_notebook(hold=False):
        held = HeldClicks(page) if hold else None
        record = tmp_path / "starts.txt"
        record.touch()
        name = f"{request.node.name}.ipynb"
        write_notebook(server.root / name, record, PLAIN_CELLS)
        page.goto(f"{server.url}/lab/tree/{name}?reset&token={server.token}")
        page.get_by_text(re.compile(r"\(ipykernel\) \| Idle")).wait_for(timeout=60_000)
        nb = Notebook(page)
        nb.run(0)
        nb.wait_done(0)
        nb.wait_until(lambda: "no map yet" in nb.widget_text(0))
        return nb, record, held, server.root / name

    return open_notebook


def test_buttons_act_within_300_ms_during_a_plain_blocking_map(open_plain, artifacts):
    nb, record, _, _ = open_plain()
    nb.run(1)
    nb.wait_until(lambda: len(starts(record)) >= 4 and "running" in nb.widget_text(0))
    assert nb.prompt(1) == "[*]:"  # the kernel's main thread is in pool.map

    halt, halt_note, halted_at = timed_click(nb, 0, "HALT", r"\bhalted\s*$")
    nb.page.wait_for_timeout(1000)  # a window in which nothing may start
    assert nb.prompt(1) == "[*]:"
    resume, resume_note, resumed_at = timed_click(nb, 0, "RESUME", r"\brunning\s*$")
    nb.wait_until(lambda: [t for t in starts(record) if t > resumed_at])
    first_after_resume = min(t for t in starts(record) if t > resumed_at)
    nb.wait_until(lambda: len([t for t in starts(record) if t > resumed_at]) >= 4)
    assert nb.prompt(1) == "[*]:"
    stop, stop_note, stopped_at = timed_click(nb, 0, "STOP", r"\bstopped\s*$")
    nb.wait_done(1, timeout=10_000)

    times = starts(record)
    late = [t - halted_at for t in times if halted_at + LATENCY_LIMIT / 1000 < t < resumed_at]
    figures = {
        "HALT click to header 'halted'": halt, "HALT click to note": halt_note,
        "HALT click to the last task start (0: none)": 1000 * max(
            [t - halted_at for t in times if halted_at < t < resumed_at], default=0),
        "RESUME click to header 'running'": resume, "RESUME click to note": resume_note,
        "RESUME click to the first task start": 1000 * (first_after_resume - resumed_at),
        "STOP click to header 'stopped'": stop, "STOP click to note": stop_note,
        "STOP click to the last task start (0: none)": 1000 * max(
            [t - stopped_at for t in times if t > stopped_at], default=0),
    }
    record_latencies(artifacts, "plain pool.map", figures)
    assert not late, f"tasks started {late} s after HALT"
    assert [t for t in times if t > stopped_at + LATENCY_LIMIT / 1000] == [], "ran after STOP"
    slow = {k: v for k, v in figures.items() if v > LATENCY_LIMIT}
    assert not slow, f"slower than {LATENCY_LIMIT} ms: {slow}"
    assert len(times) < 300
    output = nb.widget_text(1)
    assert "StoppedError" in output and "the map was stopped" in output
    assert re.search(r"stopped: \d+/300 done, \d+ pending", output)  # the summary
    nb.cell(0).screenshot(path=str(artifacts / "widget-plain-map-stopped.png"))


def saved(path, last_cell):
    """The notebook file as JupyterLab wrote it, once it holds the widgets' state and the
    output of `last_cell` (not an autosave from before)."""
    nb = json.loads(path.read_text())
    done = nb["cells"][last_cell]["execution_count"] is not None
    return nb if done and "widgets" in nb["metadata"] else None


def test_a_late_click_is_not_applied_and_the_saved_notebook_keeps_the_summary(
        open_plain, artifacts):
    nb, record, held, path = open_plain(hold=True)
    held.holding = True
    nb.run(2)
    nb.wait_until(lambda: len(starts(record)) >= 4 and "running" in nb.widget_text(0))
    nb.button(0, "HALT").click()  # made while the map runs; the kernel gets it after its end
    nb.wait_until(lambda: held.held)
    nb.wait_done(2)
    nb.wait_until(lambda: re.search(r"finished\s*$", nb.cell(0).locator(
        ".widget-html-content").first.inner_text()))
    held.release()
    nb.wait_until(lambda: re.search(r"HALT (pressed|not applied)", nb.widget_text(0)))
    assert "HALT not applied: the map it was pressed for has ended" in nb.widget_text(0)
    nb.run(3)
    nb.wait_done(3, timeout=20_000)  # a HALT that held the pool would keep this map waiting
    assert "pool halted" not in nb.widget_text(0)

    # what the page shows, then what the saved file holds
    shown = nb.widget_text(2)
    assert "finished: 40/42 done, 2 failed" in shown, shown
    nb.cell(3).locator(".jp-InputArea-editor").click()
    nb.page.keyboard.press("Control+s")
    nb.wait_until(lambda: saved(path, 3))
    notebook = saved(path, 3)
    cells = notebook["cells"]
    summaries = [o["data"] for o in cells[2]["outputs"]
                 if o["output_type"] == "display_data" and "text/html" in o["data"]
                 and "nbpar-summary" in "".join(o["data"]["text/html"])]
    assert len(summaries) == 1, cells[2]["outputs"]
    text = "".join(summaries[0]["text/plain"])
    assert re.search(r"^nbpar · work · 2 workers · \w+ · finished: 40/42 done, 2 failed · "
                     r"\d+\.\d s · [\d.]+ items/s$", text.splitlines()[0]), text
    assert re.search(r"^2 workers \(.+\) · 42 tasks · [\d.]+ s busy$", text.splitlines()[1])
    assert "errors (2):" in text
    assert re.search(r"item -1 \(index 20\) on worker \d: ValueError: -1 is negative", text)
    assert re.search(r"item -2 \(index 41\) on worker \d: ValueError: -2 is negative", text)
    html_summary = "".join(summaries[0]["text/html"])
    assert "<b style='color:#2e7d32'>finished</b>" in html_summary
    assert "-2 is negative" in html_summary
    printed = "".join("".join(o["text"]) for o in cells[2]["outputs"]
                      if o["output_type"] == "stream")
    assert re.search(r"\[worker \d\] working on -2\n", printed)  # the workers' output
    assert printed.count("working on") == 42
    (result,) = [o for o in cells[3]["outputs"] if o["output_type"] == "execute_result"]
    assert "".join(result["data"]["text/plain"]) == "6"  # the next map ran, not held
    later = ["".join(o["data"]["text/plain"]) for o in cells[3]["outputs"]
             if o["output_type"] == "display_data" and "text/html" in o["data"]]
    assert len(later) == 1 and "finished: 6/6 done" in later[0], later

    models = notebook["metadata"]["widgets"][
        "application/vnd.jupyter.widget-state+json"]["state"]
    headers = [re.sub("<[^>]+>", "", m["state"]["value"]) for m in models.values()
               if m["model_name"] == "HTMLModel"
               and str(m["state"].get("value", "")).startswith("<b>nbpar</b>")]
    assert len(headers) == 1 and re.fullmatch(r"nbpar · work · 2 workers · \w+ · finished",
                                              headers[0]), headers  # not "no map yet · idle"
    (pool_bar,) = [m["state"] for m in models.values() if m["model_name"] == "IntProgressModel"]
    assert pool_bar["value"] == pool_bar["max"] == 6  # the pool's latest map
    buttons = {m["state"]["description"]: m["state"]["disabled"] for m in models.values()
               if m["model_name"] == "ButtonModel"}
    assert buttons == dict.fromkeys(["HALT", "RESUME", "STOP", "STOP NOW"], True), buttons
    bars = sorted((m["state"]["value"], m["state"]["max"]) for m in models.values()
                  if m["model_name"] == "FloatProgressModel")
    assert bars == [(6, 6), (40, 42)], bars  # the tqdm bars' final draws, not 0/N
    bar_texts = [m["state"]["value"].replace("\u2007", " ") for m in models.values()
                 if m["model_name"] == "HTMLModel" and "item/s" in m["state"].get("value", "")]
    assert sorted(re.search(r"\d+/\d+", t).group() for t in bar_texts) == ["40/42", "6/6"]
    notes = [m["state"]["value"] for m in models.values() if m["model_name"] == "HTMLModel"
             and "not applied" in str(m["state"].get("value", ""))]
    assert notes, "the saved widget lost its note"
    nb.cell(0).screenshot(path=str(artifacts / "widget-late-click.png"))

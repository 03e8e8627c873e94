"""%parallel_map and the widget in a real IPython kernel, driven as JupyterLab drives it.

The buttons are clicked with the comm messages a browser sends, while the cell still runs;
the tasks write their own start times to a file, so "nothing started while halted" is read
from the work itself, not from nbpar's reports.
"""

import time

import psutil
import pytest

pytestmark = pytest.mark.timeout(120)

SETUP = '''
import os, time
RECORD = {record!r}
sleepy = True

def slow(x):
    with open(RECORD, "a") as f:
        f.write(f"{{time.time()}} {{x}}\\n")
    time.sleep(0.25)
    return 2 * x

def nap(x):
    if sleepy:
        time.sleep(x)
    return x

def shout(x):
    print("item", x)
    os.write(2, f"C-level {{x}}\\n".encode())
    return x
'''


@pytest.fixture
def record(record_starts):
    return record_starts(SETUP)


def starts(path):
    return [float(line.split()[0]) for line in path.read_text().splitlines()]


def test_result_list_and_worker_output_in_the_cell(live_kernel, record):
    cell = live_kernel.run("%parallel_map -n 2 shout range(4)")
    assert cell.error is None, cell.error
    assert cell.result == "[0, 1, 2, 3]"
    pane = live_kernel.pane_text()
    for x in range(4):
        assert f"] item {x}\n" in pane and f"] C-level {x}\n" in pane
    assert "[worker " in pane
    assert "item" not in cell.stdout  # in the widget's pane, not loose in the cell
    (shown,) = cell.widget_ids
    outputs = [i for i, s in live_kernel.models.items() if s.get("_model_name") == "OutputModel"]
    assert outputs[-1] in live_kernel.descendants(shown)  # the pane is in this cell's widget
    assert "finished" in live_kernel.header()


def test_buttons_act_while_the_cell_runs(live_kernel, record):
    """HALT: nothing starts while halted; RESUME: work goes on; STOP: the cell ends early
    with one line -- all clicked while the cell is still busy."""
    seen = {}

    def react(msg, cell):
        now = time.time()
        if "halt" not in seen:
            if len(starts(record)) >= 4:
                live_kernel.click("HALT")
                seen["halt"] = now
        elif "quiet" not in seen:
            header = live_kernel.header()
            table = [s["value"] for _, s in live_kernel.find("HTMLModel")
                     if "<table" in s.get("value", "")]
            if "halted" in header and table and ">busy<" not in table[-1]:
                seen["quiet"] = now  # halted, and what was in flight has finished
        elif "resume" not in seen:
            if now - seen["quiet"] >= 1.0:
                seen["count_at_resume"] = len(starts(record))
                live_kernel.click("RESUME")
                seen["resume"] = now
        elif "stop" not in seen:
            if len(starts(record)) >= seen["count_at_resume"] + 4:
                live_kernel.click("STOP")
                seen["stop"] = now

    cell = live_kernel.run("r = %parallel_map -n 2 --chunk-size 1 slow range(60)\nlen(r)",
                           react)
    assert "stop" in seen, seen
    times = starts(record)
    assert not [t for t in times if seen["quiet"] <= t <= seen["resume"]], "started while halted"
    assert [t for t in times if t > seen["resume"]], "nothing started after RESUME"
    assert len(times) < 60
    assert cell.error["ename"] == "StoppedError"
    assert cell.error["traceback"] == [
        f"StoppedError: {cell.error['evalue']}"]  # one line
    assert "continue it with %parallel_map --continue slow" in cell.error["evalue"]
    assert "stopped" in live_kernel.header()
    assert live_kernel.run("'r' in dir()").result == "False"


def test_interrupt_stops_now_and_the_kernel_stays_healthy(live_kernel, record):
    seen = {}

    def react(msg, cell):
        table = [s["value"] for _, s in live_kernel.find("HTMLModel")
                 if "<table" in s.get("value", "")]
        if "interrupt" not in seen and table and table[-1].count(">busy<") == 2:
            live_kernel.km.interrupt_kernel()
            seen["interrupt"] = time.monotonic()

    cell = live_kernel.run("%parallel_map -n 2 --chunk-size 1 nap [30, 30, 0, 0]", react)
    took = time.monotonic() - seen["interrupt"]
    assert took < 3.0, f"the cell took {took:.1f} s to end after the interrupt"
    assert cell.error["ename"] == "MapInterrupted"  # a KeyboardInterrupt
    assert cell.error["traceback"] == [f"KeyboardInterrupt: {cell.error['evalue']}"]
    assert "interrupted after 0 of 4 items (4 pending)" in cell.error["evalue"]
    assert "%parallel_map --continue nap" in cell.error["evalue"]
    kernel = psutil.Process(live_kernel.pid())
    workers = [p for child in kernel.children()
               for p in child.children(recursive=True)]  # what the fork server forked
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert live_kernel.run("1 + 1").result == "2"
    done = live_kernel.run("sleepy = False\n%parallel_map --continue nap")
    assert done.error is None, done.error
    assert done.result == "[30, 30, 0, 0]"


def test_background_returns_at_once(live_kernel, record):
    started = time.monotonic()
    cell = live_kernel.run("h = %parallel_map --background -o out -n 2 slow range(6)\nh")
    assert time.monotonic() - started < 2.0
    assert "in the background" in cell.result
    assert cell.widget_ids
    assert live_kernel.run("h.result(30)").result == "[0, 2, 4, 6, 8, 10]"
    assert live_kernel.run("out").result == "[0, 2, 4, 6, 8, 10]"


def test_not_at_the_top_level_it_works_blocking_with_live_buttons(live_kernel, record):
    cell = live_kernel.run("def f():\n    r = %parallel_map -n 1 nap [0, 0]\n    return r\nf()")
    assert cell.result == "[0, 0]"
    waits = [s["value"] for _, s in live_kernel.find("HTMLModel")
             if "only between cells" in s.get("value", "")]
    assert not waits  # this kernel has subshells: the buttons act during the blocking call
    live = live_kernel.run("from nbpar.ui import live\nprint(live.subshell_id() is not None)")
    assert live.stdout.strip() == "True"


def test_map_async_and_imap_async_show_the_widget(live_kernel, record):
    cell = live_kernel.run(
        "import nbpar\n"
        "pool = nbpar.WorkerPool(2)\n"
        "r1 = await pool.map_async(shout, range(3), progress_bar=True)\n"
        "r2 = [x async for x in pool.imap_async(nap, [0, 0, 0])]\n"
        "r1, r2")
    assert cell.error is None, cell.error
    assert cell.result == "([0, 1, 2], [0, 0, 0])"
    assert len(cell.widget_ids) == 1
    assert "] item 2\n" in live_kernel.pane_text()


def test_a_pool_displays_as_its_widget(live_kernel, record):
    cell = live_kernel.run("import nbpar\np = nbpar.WorkerPool(1)\np")
    assert cell.widget_ids, cell.messages
    assert "no map yet" in live_kernel.header()
    assert live_kernel.run("p.close(); p.join()").error is None


def test_interrupting_an_awaited_map_async(live_kernel, record):
    seen = {}

    def react(msg, cell):
        if "interrupt" not in seen and len(starts(record)) >= 2:
            live_kernel.km.interrupt_kernel()
            seen["interrupt"] = time.monotonic()

    cell = live_kernel.run(
        "import nbpar\n"
        "pool = nbpar.WorkerPool(2)\n"
        "def slower(x):\n"
        "    slow(x)\n"
        "    time.sleep(30)\n"
        "await pool.map_async(slower, range(4), chunk_size=1)", react)
    assert time.monotonic() - seen["interrupt"] < 3.0
    assert cell.error["traceback"] == [
        "KeyboardInterrupt: the map was interrupted after 0 of 4 items (4 pending); "
        "continue it with pool.map(func, report=pool.report())"]
    after = live_kernel.run("r = pool.report(); pool.close(); pool.join(); r.status, r.pending")
    assert after.result == "('stopped', [0, 1, 2, 3])"

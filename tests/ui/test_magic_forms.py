"""%parallel_map in a real kernel wherever a call can stand: under %time, %%time and %timeit,
in an assignment, a `with` block, a loop and a function; its buttons act there while the cell
blocks; the interrupt ends a timed map and a plain `pool.map` with one line saying how to
continue."""

import time

import psutil
import pytest

pytestmark = pytest.mark.timeout(180)

SETUP = '''
import contextlib, os, time
import nbpar
RECORD = {record!r}
sleepy = True

def twice(x):
    return 2 * x

def slow(x):
    with open(RECORD, "a") as f:
        f.write(f"{{time.time()}} {{x}}\\n")
    time.sleep(0.25)
    return x

def nap(x):
    with open(RECORD, "a") as f:
        f.write(f"{{time.time()}} {{x}}\\n")
    if sleepy:
        time.sleep(x)
    return x
'''


@pytest.fixture
def record(record_starts):
    return record_starts(SETUP)


def starts(path):
    return len(path.read_text().splitlines())


TOTAL = str(sum(2 * x for x in range(30)))


@pytest.mark.parametrize("code, result, shows", [
    ("%time r = %parallel_map -n 2 twice range(30)\nsum(r)", TOTAL, "Wall time"),
    ("%time %parallel_map -n 2 twice [1, 2]", "[2, 4]", "Wall time"),
    ("%%time\nr = %parallel_map -n 2 twice range(30)\nsum(r)", TOTAL, "Wall time"),
    ("%timeit -n1 -r1 %parallel_map -n 2 twice range(30)", None, "per loop"),
    ("r = %parallel_map -n 2 twice range(30)\nsum(r)", TOTAL, None),
    ("with contextlib.nullcontext():\n    r = %parallel_map -n 2 twice range(30)\nsum(r)",
     TOTAL, None),
    ("total = 0\nfor k in range(2):\n    r = %parallel_map -n 2 twice range(30)\n"
     "    total += sum(r)\ntotal // 2", TOTAL, None),
    ("def f():\n    r = %parallel_map -n 2 twice range(30)\n    return sum(r)\nf()", TOTAL, None),
])
def test_every_form_of_call_works(live_kernel, record, code, result, shows):
    assert live_kernel.run("r = total = None").error is None  # nothing left from before
    cell = live_kernel.run(code)
    assert cell.error is None, cell.error
    assert cell.result == result
    if shows:
        assert shows in cell.stdout
    assert cell.widget_ids  # the pool widget, in every form


@pytest.mark.parametrize("progress", ["text", "none"])
def test_progress_other_than_the_widget(live_kernel, record, progress):
    cell = live_kernel.run(f"%parallel_map -n 2 --progress {progress} twice [1, 2, 3]")
    assert cell.error is None, cell.error
    assert cell.result == "[2, 4, 6]"
    buttons = [i for i in cell.widget_ids
               if any(s.get("description") == "HALT" for s in
                      (live_kernel.models.get(c, {}) for c in live_kernel.descendants(i)))]
    assert not buttons  # no pool widget; text shows tqdm's bar, none shows nothing
    if progress == "none":
        assert not cell.widget_ids


def test_stop_acts_while_a_timed_cell_blocks(live_kernel, record):
    seen = {}

    def react(msg, cell):
        if "stop" not in seen and starts(record) >= 4:
            live_kernel.click("STOP")
            seen["stop"] = starts(record)

    cell = live_kernel.run("%%time\nr = %parallel_map -n 2 --chunk-size 1 slow range(60)", react)
    assert "stop" in seen
    assert starts(record) < 20  # it stopped early, not after the 60 items
    assert cell.error["ename"] == "StoppedError"
    assert cell.error["traceback"] == [f"StoppedError: {cell.error['evalue']}"]
    assert "continue it with %parallel_map --continue slow" in cell.error["evalue"]


def _forked_workers(live_kernel):
    kernel = psutil.Process(live_kernel.pid())
    return [p for child in kernel.children() for p in child.children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def _interrupt_once_started(live_kernel, record, seen, count=2):
    def react(msg, cell):
        if "interrupt" not in seen and starts(record) >= count:
            live_kernel.km.interrupt_kernel()
            seen["interrupt"] = time.monotonic()
    return react


def test_interrupt_ends_a_timed_map_at_once(live_kernel, record):
    seen = {}
    cell = live_kernel.run("%time r = %parallel_map -n 2 --chunk-size 1 nap [30, 30, 0, 0]",
                           _interrupt_once_started(live_kernel, record, seen))
    took = time.monotonic() - seen["interrupt"]
    assert took < 3.0, f"the cell took {took:.1f} s to end after the interrupt"
    assert cell.error["ename"] == "MapInterrupted"
    assert cell.error["traceback"] == [
        "KeyboardInterrupt: the map was interrupted after 0 of 4 items (4 pending); "
        "continue it with %parallel_map --continue nap"]
    assert not _forked_workers(live_kernel)
    done = live_kernel.run("sleepy = False\n%parallel_map --continue nap")
    assert done.error is None, done.error
    assert done.result == "[30, 30, 0, 0]"


def test_an_interrupted_pool_map_is_one_line(live_kernel, record):
    seen = {}
    cell = live_kernel.run("sleepy = True\npool = nbpar.WorkerPool(2)\n"
                           "pool.map(nap, [30, 30, 0, 0], chunk_size=1)",
                           _interrupt_once_started(live_kernel, record, seen))
    assert time.monotonic() - seen["interrupt"] < 3.0
    assert cell.error["ename"] == "KeyboardInterrupt"  # itself: a script still ends as by ^C
    assert cell.error["traceback"] == [
        "KeyboardInterrupt: the map was interrupted after 0 of 4 items (4 pending); "
        "continue it with pool.map(func, report=pool.report())"]
    done = live_kernel.run("sleepy = False\nr = pool.map(nap, report=pool.report())\n"
                           "pool.close(); pool.join()\nr")
    assert done.error is None, done.error
    assert done.result == "[30, 30, 0, 0]"


def test_an_interrupted_pool_map_with_a_bar(live_kernel, record):
    """The tqdm bar draws in the waiting thread: the interrupt lands there, same line."""
    seen = {}
    cell = live_kernel.run("sleepy = True\npool = nbpar.WorkerPool(2)\ntry:\n"
                           "    pool.map(nap, [30, 30], chunk_size=1, progress_bar=True)\n"
                           "finally:\n    pool.terminate()",
                           _interrupt_once_started(live_kernel, record, seen))
    assert time.monotonic() - seen["interrupt"] < 3.0
    assert cell.error["traceback"] == [
        "KeyboardInterrupt: the map was interrupted after 0 of 2 items (2 pending); "
        "continue it with pool.map(func, report=pool.report())"]

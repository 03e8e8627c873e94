"""In a real kernel, a worker's traceback names the notebook cell as IPython does for a local
error ("Cell In[N], line L") with the cell's source line, under every start method: in the
exception's cause, in the report's errors (the widget's error pane) and in %parallel_map's
error."""

import re

import pytest

pytestmark = pytest.mark.timeout(120)

DEFINE = '''def parse_reading(text):
    value, unit = text.split()
    if unit != "C":
        raise ValueError(f"unknown unit {unit!r}")
    return float(value)
'''


def _cell_frame(text):
    return re.search(r"Cell In\[(\d+)\], line 4, in parse_reading\n"
                     r"    raise ValueError\(f\"unknown unit \{unit!r\}\"\)\n", text)


@pytest.mark.parametrize("start_method", ["forkserver", "fork", "spawn", "threading"])
def test_worker_frames_show_the_cell_and_its_source(live_kernel, start_method):
    defined = live_kernel.run(DEFINE)
    assert defined.error is None, defined.error
    number = next(msg["content"]["execution_count"] for msg in defined.messages
                  if msg["msg_type"] == "execute_input")
    cell = live_kernel.run(f'''
import nbpar
with nbpar.WorkerPool(2, start_method={start_method!r}) as pool:
    try:
        pool.map(parse_reading, ["21 C", "70 F"], chunk_size=1)
    except ValueError as error:
        print(error.__cause__.tb)
        print("--- report ---")
        print(pool.report().errors[0].traceback)
''')
    assert cell.error is None, cell.error
    cause, report = cell.stdout.split("--- report ---")
    for text in (cause, report):
        found = _cell_frame(text)
        assert found, text
        assert int(found.group(1)) == number
        assert "ValueError: unknown unit 'F'" in text
        assert "<dynamic-code>" not in text and "nbpar/worker.py" not in text


def test_parallel_map_error_shows_the_cell_source(live_kernel):
    defined = live_kernel.run(DEFINE)
    assert defined.error is None, defined.error
    cell = live_kernel.run('r = %parallel_map -n 2 parse_reading ["21 C", "70 F"]')
    assert cell.error is not None and cell.error["ename"] == "ValueError"
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(cell.error["traceback"]))
    assert _cell_frame(shown), shown


@pytest.mark.parametrize("code, line", [
    ('r = %parallel_map -n 2 parse_reading ["21 C", "70 F"]', 1),
    ('%time r = %parallel_map -n 2 parse_reading ["21 C", "70 F"]', None),
    ('def read_all():\n    return_value = %parallel_map -n 2 parse_reading ["21 C", "70 F"]\n'
     '    return return_value\nread_all()', 2),
])
def test_parallel_map_error_shows_the_users_frames_only(live_kernel, code, line):
    """The cell's magic line and the worker's frames in the user's code: no frame of nbpar
    or of IPython's magic machinery, nor a note that some were hidden."""
    assert live_kernel.run(DEFINE).error is None
    cell = live_kernel.run(code)
    assert cell.error is not None and cell.error["ename"] == "ValueError"
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(cell.error["traceback"]))
    assert _cell_frame(shown), shown  # the worker's frame, in the cell that defined it
    assert ("run_line_magic('parallel_map', '-n 2 parse_reading" in shown  # the cell's line
            or "run_line_magic('time', 'r = %parallel_map -n 2 parse_reading" in shown)
    if line is not None:
        assert re.search(rf"Cell In\[\d+\], line {line}\b", shown), shown
    assert "nbpar: raised by item '70 F' (index 1) on worker" in shown
    for internal in ("nbpar/", "IPython/core", "decorator-gen", "skipping hidden"):
        assert internal not in shown, shown


def test_the_full_traceback_stays_at_hand(live_kernel):
    """Only the first showing leaves nbpar's frames out: %tb shows them all."""
    assert live_kernel.run(DEFINE).error is None
    assert live_kernel.run('%parallel_map -n 1 parse_reading ["70 F"]').error is not None
    again = live_kernel.run("%tb")
    shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(again.error["traceback"]))
    assert "nbpar/ui/magics.py" in shown and "ValueError: unknown unit 'F'" in shown

"""%parallel_map in an InteractiveShell (no kernel): options, results, usage errors, continue.

Functions are defined in the shell (its `__main__`), so they travel to the workers by value.
Outside a notebook the magic blocks and shows a tqdm bar (or nothing, with --progress none).
"""

import subprocess
import sys
import threading

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import nbpar
from nbpar.ui import magics
from waiting import wait_for


@pytest.fixture(scope="module")
def ip():
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nbpar")
    shell.run_cell("def square(x):\n    return x * x\n"
                   "def scaled(k, x):\n    return k * x\n"
                   "def shout(x):\n    print('item', x)\n    return x\n"
                   "import threading\n"
                   "gate = threading.Event()\n"
                   "def gated(x):\n    gate.wait(30)\n    return x\n")
    yield shell
    shell.run_line_magic("unload_ext", "nbpar")


@pytest.fixture
def pools(ip):
    """`pool`, an open WorkerPool of threads, and `closed_pool`, a closed one."""
    pool = ip.user_ns["pool"] = nbpar.WorkerPool(2, start_method="threading")
    closed = ip.user_ns["closed_pool"] = nbpar.WorkerPool(1, start_method="threading")
    closed.close()
    closed.join()
    yield pool
    pool.close()
    pool.join()


def pm(ip, line):
    return ip.run_line_magic("parallel_map", line)


def test_results_in_input_order(ip):
    assert pm(ip, "-n 2 square range(0, 50)") == [x * x for x in range(50)]


def test_options(ip):
    ip.user_ns["xs"] = [1, 2, 3]
    line = "-n 2 --start-method threading --shared 10 --chunk-size 2 -o out scaled xs"
    assert pm(ip, line) == [10, 20, 30]
    assert ip.user_ns["out"] == [10, 20, 30]


def test_expressions_keep_their_spaces_and_brackets(ip):
    assert pm(ip, '--start-method threading len ["a  b", {"k": 1}, (1, 2, 3)]') == [4, 1, 3]
    assert pm(ip, "--start-method threading square [x + 1 for x in range(3)]") == [1, 4, 9]


def test_dotted_and_builtin_names(ip):
    ip.run_cell("import math")
    assert pm(ip, "--start-method threading math.sqrt [4, 9]") == [2.0, 3.0]
    assert pm(ip, "--start-method threading abs [-1, 2]") == [1, 2]


@pytest.mark.parametrize("line, says", [
    ("-n x square [1]", "invalid int value"),
    ("--start-method nope square [1]", "invalid choice"),
    ("--bogus square [1]", "unrecognized arguments"),
    ("", "required: FUNC"),
    ("square", "missing ITERABLE_EXPR"),
    ("nosuch [1]", "FUNC 'nosuch' is not defined"),
    ("math.nosuch [1]", "no attribute 'nosuch'"),
    ("xs [1]", "is not callable"),
    ("square(1) [1]", "FUNC must be a name"),
    ("square rnge(3)", "NameError"),
    ("square 5", "is not iterable"),
    ("square [1", "SyntaxError"),
    ("--shared undefined_name square [1]", "--shared 'undefined_name' failed"),
    ("-o 1x square [1]", "-o needs a variable name"),
    ("-n 0 square [1]", "n_jobs must be"),
    ("--continue square [1]", "--continue takes no ITERABLE_EXPR"),
    ("--timeout x square [1]", "argument --timeout: invalid float value: 'x'"),
    ("--timeout 0 square [1]", "--timeout needs a number of seconds > 0, got 0"),
    ("--timeout -2 square [1]", "--timeout needs a number of seconds > 0, got -2"),
    ("--timeout nan square [1]", "--timeout needs a number of seconds > 0, got nan"),
    ("--progress bar square [1]", "argument --progress: invalid choice: 'bar'"),
    ("--checkpoint '' square [1]", "--checkpoint needs a file name"),
    ("--checkpoint 'a'b square [1]", "--checkpoint 'a'b: not a valid quoted file name"),
    ("--checkpoint c.ckpt --continue square", "--continue takes no --checkpoint"),
    ("--pool nothing square [1]", "--pool 'nothing' is not defined"),
    ("--pool xs square [1]", "--pool 'xs' is not an nbpar.WorkerPool (a list)"),
    ("--pool pool.x square [1]", "--pool 'pool.x': no attribute 'x'"),
    ("--pool pool -n 2 square [1]", "-n does not go with --pool"),
    ("--pool pool --start-method fork square [1]", "--start-method does not go with --pool"),
    ("--pool pool --shared 1 square [1]", "--shared does not go with --pool"),
    ("--pool pool --keep-alive square [1]", "--keep-alive does not go with --pool"),
    ("--pool closed_pool square [1]", "--pool 'closed_pool' is closed"),
])
def test_a_bad_line_is_one_usage_line(ip, pools, line, says):
    ip.run_cell("import math")
    ip.user_ns["xs"] = [1]
    with pytest.raises(UsageError) as info:
        pm(ip, line)
    message = str(info.value)
    assert says in message
    assert "\n" not in message and message.startswith("%parallel_map")


def test_usage_error_shows_one_line_in_a_cell(ip, capsys):
    ip.run_cell("%parallel_map square nothing_here")
    out = capsys.readouterr()
    text = out.out + out.err
    assert "UsageError: %parallel_map: ITERABLE_EXPR 'nothing_here' failed" in text
    assert "Traceback" not in text


def test_background_returns_a_handle_and_stores_the_list(ip):
    ip.user_ns["gate"].clear()
    handle = pm(ip, "--start-method threading -n 2 --background -o later gated range(6)")
    assert isinstance(handle, magics.BackgroundMap)
    assert not handle.done() and "later" not in ip.user_ns
    assert "in the background" in repr(handle)
    ip.user_ns["gate"].set()
    assert handle.result(timeout=30) == list(range(6))
    assert ip.user_ns["later"] == list(range(6))
    assert handle.report().status == "finished"


def test_stop_then_continue(ip):
    ip.user_ns["gate"].clear()
    handle = pm(ip, "--start-method threading -n 2 --chunk-size 1 --background gated range(8)")
    wait_for(lambda: handle.report().status == "running" and handle.report().workers,
             timeout=10)
    handle.stop()
    ip.user_ns["gate"].set()
    with pytest.raises(nbpar.StoppedError) as info:
        handle.result(timeout=30)
    message = str(info.value)
    assert "continue it with %parallel_map --continue gated" in message
    assert "\n" not in message
    assert info.value._render_traceback_() == [f"StoppedError: {message}"]
    stopped = info.value.report
    assert stopped.status == "stopped" and stopped.pending
    assert pm(ip, "--start-method threading --continue gated") == list(range(8))


def test_continue_needs_a_stopped_map(ip):
    magic = ip.magics_manager.registry["ParallelMagics"]
    saved, magic.stopped = magic.stopped, None
    try:
        with pytest.raises(UsageError, match="no stopped %parallel_map"):
            pm(ip, "--continue square")
    finally:
        magic.stopped = saved


def test_worker_output_is_tagged_in_a_terminal(ip, capfd):
    assert pm(ip, "-n 1 shout [7]") == [7]
    out = capfd.readouterr().out
    assert "[worker 0] item 7" in out


def test_a_failing_function_raises_its_own_error(ip):
    ip.run_cell("def boom(x):\n    raise ValueError(f'bad {x}')\n")
    with pytest.raises(ValueError, match="bad"):
        pm(ip, "--start-method threading boom [1]")


def test_interrupt_is_one_line_with_how_to_continue(ip):
    """Ctrl-C while the magic blocks: the pool stops the map now (STOP_RIGHTNOW) and
    re-raises KeyboardInterrupt; the magic turns that into one line saying how to continue."""
    ip.run_cell("import time\ndef nap(x):\n    time.sleep(x)\n    return x\n")
    run = ip.magics_manager.registry["ParallelMagics"].prepare("-n 1 --chunk-size 1 nap [30, 0]")
    original = run.pool.map

    def map_hit_by_ctrl_c(*args, **kwargs):
        threading.Timer(0.5, run.pool.stop, kwargs={"now": True}).start()
        try:
            return original(*args, **kwargs)
        except nbpar.StoppedError:  # what the pool's KeyboardInterrupt path leaves behind
            raise KeyboardInterrupt from None

    run.pool.map = map_hit_by_ctrl_c
    with pytest.raises(magics.MapInterrupted) as info:
        run.blocking()
    assert isinstance(info.value, KeyboardInterrupt)
    assert "interrupted after 0 of 2 items (2 pending)" in str(info.value)
    assert "%parallel_map --continue nap" in str(info.value)
    assert info.value._render_traceback_()[0].startswith("KeyboardInterrupt: the map was")
    assert ip.magics_manager.registry["ParallelMagics"].stopped.pending == [30, 0]


def test_extension_loads_again_and_import_stays_light(ip):
    ip.run_line_magic("load_ext", "nbpar")
    ip.run_line_magic("reload_ext", "nbpar")
    assert "parallel_map" in ip.magics_manager.magics["line"]
    code = ("import sys, nbpar; heavy = [m for m in ('IPython', 'ipywidgets', 'tqdm', "
            "'asyncio') if m in sys.modules]; sys.exit(str(heavy) if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_magic_help_names_every_option(ip):
    doc = ip.magics_manager.magics["line"]["parallel_map"].__doc__
    for option in ("-n", "--start-method", "--shared", "--chunk-size", "--timeout",
                   "--checkpoint", "--progress", "--keep-alive", "--pool", "--background", "-o",
                   "--continue", "FUNC", "ITERABLE_EXPR"):
        assert option in doc
    assert "Parameters\n" in doc and "Raises\n" in doc


def test_split_words():
    words, spans = magics.split_words(' f  range(0, 3) "a b" [1, (2, 3)] \'\'\'x y\'\'\' ')
    assert words == ["f", "range(0, 3)", '"a b"', "[1, (2, 3)]", "'''x y'''"]
    assert all(len(w) == e - s for w, (s, e) in zip(words, spans))

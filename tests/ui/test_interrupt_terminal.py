"""An interrupted `pool.map` outside IPython: a plain Python traceback whose last line says how
far the map got and how to continue it (in IPython that line alone shows; test_magic_forms.py).
"""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(60)

SCRIPT = textwrap.dedent("""
    import sys, threading, time
    import nbpar

    def slow(x):
        time.sleep(30)
        return x

    if __name__ == "__main__":
        pool = nbpar.WorkerPool(2)
        def announce():
            while not [w for w in pool.report().workers if w.state == "busy"]:
                time.sleep(0.02)
            print("BUSY", flush=True)
        threading.Thread(target=announce, daemon=True).start()
        try:
            pool.map(slow, range(3), chunk_size=1)
        finally:
            pool.terminate()
""")


def test_the_message_ends_a_plain_traceback(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().startswith("BUSY")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):", err
    assert lines[-1] == ("KeyboardInterrupt: the map was interrupted after 0 of 3 "
                         "items (3 pending); continue it with "
                         "pool.map(func, report=pool.report())"), err
    assert proc.returncode == -signal.SIGINT  # ended as by Ctrl-C: 130 in a shell

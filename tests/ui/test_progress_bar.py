"""nbpar.ui.progress.ProgressBar against a fake pool whose reports the test controls."""

import io
import subprocess
import sys
import threading

from nbpar.reports import Report
from nbpar.ui.progress import ProgressBar


class FakePool:
    def __init__(self, total):
        self.current = Report("running", total, 0, 0, 0.0)
        self.looks = 0
        self.looked = threading.Condition()

    def set(self, status, done, failed=0):
        self.current = Report(status, self.current.total, done, failed, 0.0)

    def report(self):
        with self.looked:
            self.looks += 1
            self.looked.notify_all()
        return self.current

    def wait_looks(self, n, timeout=5.0):
        with self.looked:
            target = self.looks + n
            return self.looked.wait_for(lambda: self.looks >= target, timeout)


def test_bar_follows_reports_and_closes():
    pool = FakePool(10)
    pool.set("running", 2)
    bar = ProgressBar(pool, 10, file=io.StringIO())
    assert bar._bar.n == 2  # starts where the map stands (a continued map)
    pool.set("halted", 4, failed=1)
    assert pool.wait_looks(2)
    assert bar._bar.n == 4
    assert "halted, 1 failed" in str(bar._bar)
    pool.set("finished", 10, failed=1)
    bar.close()
    assert not bar._thread.is_alive()
    assert bar._bar.n == 10 and "finished" in bar._bar.postfix
    bar.close()  # a second close is harmless


def test_a_failing_report_does_not_kill_the_bar():
    pool = FakePool(3)
    real = pool.report
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boss busy")
        return real()

    pool.report = flaky
    bar = ProgressBar(pool, 3, file=io.StringIO())
    pool.set("running", 3)
    assert pool.wait_looks(2)
    assert bar._thread.is_alive()
    bar.close()
    assert bar._bar.n == 3


def test_import_nbpar_does_not_import_tqdm():
    code = "import sys, nbpar; sys.exit('tqdm' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


class FakeHandle:
    """A map's handle that ends after its caller has waited `n` times."""

    def __init__(self, pool, n):
        self.pool, self.n, self.waits = pool, n, 0

    def wait(self, timeout=None):
        self.waits += 1
        self.pool.set("running", self.waits)
        return self.waits > self.n


def test_a_bar_without_a_thread_draws_while_its_caller_waits():
    pool = FakePool(10)
    threads = threading.active_count()
    bar = ProgressBar(pool, 10, initial=0, thread=False, interval=0.001, file=io.StringIO())
    assert threading.active_count() == threads and pool.looks == 0  # given initial: no look
    handle = FakeHandle(pool, 3)
    bar.follow(handle)
    assert handle.waits == 4 and pool.looks == 3 and bar._bar.n == 3
    bar.close(Report("finished", 10, 10, 0, 0.0))  # the map's own report: no look either
    assert pool.looks == 3 and bar._bar.n == 10 and "finished" in bar._bar.postfix

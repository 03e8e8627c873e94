"""The caller's side of a map: a handle's completion latch."""

from __future__ import annotations

import threading

from nbpar.jobs import _Latch

from waiting import wait_for


def test_every_thread_waiting_on_a_latch_wakes_when_it_opens():
    latch = _Latch()
    assert latch.wait(0) is False and latch.wait(0.01) is False
    woke = []
    waiters = [threading.Thread(target=lambda: woke.append(latch.wait(10))) for _ in range(4)]
    for t in waiters:
        t.start()
    wait_for(lambda: latch._event is not None, timeout=5)  # they are waiting
    latch.open()
    for t in waiters:
        t.join(5)
    assert woke == [True] * 4
    latch.open()  # opening twice is harmless
    assert latch.wait() and latch.wait(0)


def test_a_latch_nobody_waited_on_makes_no_event():
    latch = _Latch()
    latch.open()
    assert latch._event is None and latch.wait(0)

"""The Boss's wait: a key made ready by one wait must not be read as news of whatever
reuses its fd number while the same wait's keys are being handled."""

from __future__ import annotations

import os

from nbpar import state as st
from nbpar.backends.thread import ThreadBackend
from nbpar.boss import BossThread


def test_a_ready_key_of_a_closed_fd_is_not_news_of_the_fd_reusing_its_number():
    boss = BossThread(ThreadBackend(2, None), st.BossState(2), make_setup=None,
                      on_output=lambda *a: None)
    old_r, old_w = os.pipe()
    new_r, new_w = os.pipe()
    try:
        boss._watch(old_r, "output", 0)
        os.close(old_w)  # EOF: the old worker's output is ready
        ready = dict(boss._selector.select(0))
        (old_key,) = [k for k in ready if k.fileobj == old_r]
        assert boss._current(old_key)

        # handling an earlier key retires the old worker and starts a new one on that fd number
        boss._forget(old_r)
        os.dup2(new_r, old_r)
        boss._watch(old_r, "sentinel", 1)

        assert not boss._current(old_key)  # would be a false "worker 1 died"
        (fresh,) = [k for k, _ in boss._selector.select(0) if k.fileobj == old_r] or [None]
        assert fresh is None  # the new sentinel itself is not ready: nothing to handle
    finally:
        for fd in (old_r, new_r, new_w):
            os.close(fd)
        boss._selector.close()
        boss.control.close()


def test_a_burst_of_control_messages_wakes_the_boss_once_and_none_is_lost():
    from nbpar.boss import ControlPipe
    pipe = ControlPipe()
    try:
        for k in range(1000):
            pipe.send(k)
        assert len(os.read(pipe.fileno(), 65536)) == 1  # one wake-up byte for the burst
        pipe._armed = True  # (as after that read: the byte is taken, the flag not yet cleared)
        assert pipe.drain() == list(range(1000))
        pipe.send("next")  # after a drain, the next message writes a byte again
        assert os.read(pipe.fileno(), 65536) == b"\0"
        assert pipe.drain() == ["next"]
    finally:
        pipe.close()

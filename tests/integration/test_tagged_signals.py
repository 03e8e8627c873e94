"""Signals tagged with their map (`pool.send(sig, for_map=job_id)`, what a widget click sends)
never act on another map: one that comes after its map ended is dropped."""

import pytest

import nbpar
from nbpar import Signal

pytestmark = pytest.mark.timeout(60)


def test_a_halt_for_an_ended_map_does_not_hold_the_next():
    with nbpar.WorkerPool(1, start_method="threading", keep_alive=True) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
        ended = pool.report().job_id
        pool.send(Signal.HALT, for_map=ended)
        assert not pool.report().pool_halted
        assert pool.map(abs, [-3]) == [3]  # would wait for RESUME if the HALT had applied


def test_an_untagged_halt_still_holds_the_pool():
    with nbpar.WorkerPool(1, start_method="threading", keep_alive=True) as pool:
        pool.map(abs, [-1])
        pool.halt()
        r = pool.report()
        assert r.pool_halted and "the pool is halted" in str(r)
        pool.resume()
        assert not pool.report().pool_halted

"""Scheduling policies as tables: adaptive chunking and MaxThreadsScheduler.capacity.

Per-item times are powers of two so that the chunker's arithmetic is exact.
"""

from __future__ import annotations

import math

import pytest

from nbpar.scheduling import AdaptiveChunker, MaxThreadsScheduler, Running, Scheduler

TINY = 2 ** -17  # ~7.6 us per item: 20 ms is 2621 items


def measured(per_item, floor=0.0):
    """A chunker that has seen one item take `per_item` seconds; without the tail's floor
    unless asked (the share rule alone; the floor has tests of its own)."""
    chunker = AdaptiveChunker()
    chunker.floor = floor
    chunker.observe(1, per_item)
    return chunker


def steady(per_item=TINY, floor=0.0):
    """A chunker that has grown to its target size."""
    chunker = measured(per_item, floor)
    for _ in range(10):
        chunker.next_size(None, 1)
    return chunker


# ----------------------------------------------------------------------------- AdaptiveChunker

def test_class_defaults():
    assert (AdaptiveChunker.target, AdaptiveChunker.growth,
            AdaptiveChunker.prefetch_below) == (0.02, 8, 0.05)


@pytest.mark.parametrize("remaining, n_workers", [(None, 1), (100, 4), (10 ** 6, 1), (0, 2)])
def test_first_batch_is_one_item_while_nothing_is_measured(remaining, n_workers):
    assert AdaptiveChunker().next_size(remaining, n_workers) == 1


@pytest.mark.parametrize("per_item, sizes", [
    (TINY, [8, 64, 512, 2621, 2621, 2621]),   # x8 per batch until a batch takes ~20 ms
    (2 ** -10, [8, 20, 20]),                  # ~1 ms per item: 20 items = 20 ms
    (2 ** -8, [5, 5]),                        # 5.12 -> 5 items
    (2 ** -6, [1, 1]),                        # 15.6 ms per item: one at a time
    (1.0, [1, 1]),                            # a second per item: never below one
])
def test_growth_is_bounded_and_reaches_the_target(per_item, sizes):
    chunker = measured(per_item)
    got = [chunker.next_size(None, 1) for _ in sizes]
    assert got == sizes
    previous = [1] + got[:-1]
    assert all(b <= AdaptiveChunker.growth * a for a, b in zip(previous, got))
    assert got[-1] == max(1, int(AdaptiveChunker.target / per_item))


@pytest.mark.parametrize("remaining, n_workers, size", [
    (100, 2, 25),        # a quarter: each of 2 workers gets at most half of its share
    (10, 2, 3),          # ceil(10 / 4)
    (9, 1, 5),
    (1, 4, 1),
    (0, 4, 1),           # never zero
    (7, 0, 4),           # no worker ready yet counts as one
    (10 ** 6, 2, 2621),  # plenty left: the target size rules
    (None, 8, 2621),     # unknown length: no tail balancing
])
def test_tail_is_balanced_with_remaining(remaining, n_workers, size):
    assert steady().next_size(remaining, n_workers) == size


def test_growth_restarts_from_the_last_size_after_the_tail_shrank_it():
    chunker = steady()
    assert chunker.next_size(4, 2) == 1
    assert chunker.next_size(None, 1) == 8


@pytest.mark.parametrize("fixed", [1, 7, 1000])
@pytest.mark.parametrize("remaining, n_workers", [(None, 1), (1, 8), (10 ** 6, 2)])
def test_fixed_chunk_size_bypasses_everything(fixed, remaining, n_workers):
    chunker = AdaptiveChunker(fixed)
    assert chunker.next_size(remaining, n_workers) == fixed
    chunker.observe(fixed, 10.0)
    assert chunker.next_size(remaining, n_workers) == fixed


@pytest.mark.parametrize("samples, per_item", [
    ([(1, 0.01)], 0.01),
    ([(1, 0.01), (1, 0.03)], 0.02),            # newer samples weigh half
    ([(4, 0.04), (2, 0.08)], 0.025),           # per item: 0.01 then 0.04
    ([(1, 0.0)], 1e-9),                        # a zero time never divides by zero
    ([(0, 5.0), (1, 0.5)], 0.5),               # an empty batch teaches nothing
])
def test_observe_averages_per_item_times(samples, per_item):
    chunker = AdaptiveChunker()
    for n, elapsed in samples:
        chunker.observe(n, elapsed)
    assert chunker.per_item == pytest.approx(per_item)


def test_observe_of_an_empty_batch_only_is_ignored():
    chunker = AdaptiveChunker()
    chunker.observe(0, 1.0)
    assert chunker.per_item is None
    assert chunker.next_size(None, 1) == 1


@pytest.mark.parametrize("per_item, size, prefetch", [
    (None, 1, False),         # nothing measured: do not queue a second batch
    (2 ** -5, 1, True),       # 31 ms < 50 ms
    (2 ** -4, 1, False),      # 62 ms
    (2 ** -8, 12, True),      # 46.9 ms
    (2 ** -8, 13, False),     # 50.8 ms
    (TINY, 2621, True),       # a target-size batch is always short enough
])
def test_may_prefetch_only_short_batches(per_item, size, prefetch):
    chunker = AdaptiveChunker() if per_item is None else measured(per_item)
    assert chunker.may_prefetch(size) is prefetch


def test_may_prefetch_applies_to_a_fixed_chunk_size_too():
    chunker = AdaptiveChunker(100)
    assert chunker.may_prefetch(100) is False
    chunker.observe(100, 0.01)
    assert chunker.may_prefetch(100) is True
    chunker.observe(100, 10.0)
    assert chunker.may_prefetch(100) is False


def test_batches_sum_to_the_whole_map_and_shrink_at_the_end():
    chunker = steady()
    total, n_workers, left, sizes = 10_000, 4, 10_000, []
    while left:
        size = min(chunker.next_size(left, n_workers), left)
        sizes.append(size)
        left -= size
    assert sum(sizes) == total
    assert max(sizes) <= math.ceil(total / (2 * n_workers))
    assert sizes[-1] == 1
    assert sizes == sorted(sizes, reverse=True)


def test_a_backends_min_batch_time_sets_target_prefetch_and_tail_floor():
    """Dask's hook: longer batches, a second one queued behind, no tail cut below a quarter."""
    chunker = AdaptiveChunker(min_batch_time=0.2)
    assert (chunker.target, chunker.prefetch_below, chunker.floor) == (0.2, 0.4, 0.05)
    chunker.observe(1, 0.004)
    for _ in range(5):
        chunker.next_size(None, 2)
    assert chunker.next_size(None, 2) == 50  # 0.2 s of 4 ms items
    assert chunker.may_prefetch(50) is True
    assert chunker.next_size(30, 2) == 12  # the tail: no batch under 0.05 s (12 items)
    assert AdaptiveChunker(min_batch_time=0.001).target == AdaptiveChunker.target  # never less
    assert AdaptiveChunker().floor == pytest.approx(0.0002)  # local workers: 0.2 ms


@pytest.mark.parametrize("per_item, remaining, n_workers, size", [
    (2 ** -22, 10_000, 32, 838),  # 0.24 µs no-ops: not cut below 0.2 ms (838), not 157
    (2 ** -22, 500, 32, 500),     # (all that is left, if less)
    (TINY, 100, 2, 26),           # 7.6 µs: the share (25) is under 0.2 ms: 26
    (TINY, 1000, 2, 250),         # a share of 250 is over it: the share rules
    (2 ** -10, 4, 2, 1),          # 1 ms items: the floor is under one item
])
def test_the_tail_is_not_cut_into_batches_shorter_than_the_floor(per_item, remaining,
                                                                 n_workers, size):
    chunker = steady(per_item, floor=AdaptiveChunker.floor)
    assert min(chunker.next_size(remaining, n_workers), remaining) == size


# ----------------------------------------------------------------------------- schedulers

def test_base_scheduler_has_no_limit():
    assert Scheduler().capacity(object(), Running(5, {0: 5}), ()) is None
    assert repr(Scheduler()) == "Scheduler()"


def test_running_defaults_are_not_shared():
    a, b = Running(), Running()
    a.by_job[1] = 1
    assert (b.total, b.by_job) == (0, {})


@pytest.mark.parametrize("n, total, by_job, capacity", [
    (1, 0, {}, 1),
    (1, 1, {0: 1}, 0),
    (2, 1, {0: 1}, 1),
    (2, 2, {0: 1, 1: 1}, 0),     # the cap is across every map of the pool
    (3, 2, {7: 2}, 1),
    (4, 0, {}, 4),
    (2, 5, {0: 5}, 0),           # never negative
])
def test_max_threads_capacity(n, total, by_job, capacity):
    sched = MaxThreadsScheduler(n)
    assert sched.capacity(object(), Running(total, by_job)) == capacity
    assert sched.capacity(object(), Running(total, by_job), history=[object()]) == capacity


@pytest.mark.parametrize("bad", [0, -1, 1.5, 2.0, "2", None, [1]])
def test_max_threads_needs_a_whole_number_of_at_least_one(bad):
    with pytest.raises(ValueError, match="MaxThreadsScheduler"):
        MaxThreadsScheduler(bad)


def test_max_threads_refuses_a_bool():
    with pytest.raises(ValueError):
        MaxThreadsScheduler(True)


def test_max_threads_repr_and_value():
    sched = MaxThreadsScheduler(3)
    assert sched.n == 3
    assert repr(sched) == "MaxThreadsScheduler(3)"
    assert isinstance(sched, Scheduler)


# ------------------------------------------------------------------------ memory, order, limits

class _Job:
    """What a scheduler sees of a map: declared memory of its next item, durations."""

    def __init__(self, need=0, durations=None, jid=0):
        self.id, self._need, self._durations = jid, need, durations

    def next_memory(self):
        return self._need

    def durations(self):
        return self._durations


MB = 2**20


@pytest.mark.parametrize("running,need,expected", [
    (Running(0, {}, 0), 500 * MB, None),          # one task always may run
    (Running(1, {0: 1}, 50 * MB), 40 * MB, None),  # 90 <= 100
    (Running(1, {0: 1}, 60 * MB), 40 * MB, None),  # exactly at the limit
    (Running(1, {0: 1}, 61 * MB), 40 * MB, 0),     # over
    (Running(2, {0: 2}, 90 * MB), 0, None),         # nothing declared: fits
])
def test_max_memory_capacity(running, need, expected):
    from nbpar.scheduling import MaxMemoryScheduler
    assert MaxMemoryScheduler(100 * MB).capacity(_Job(need), running) == expected


@pytest.mark.parametrize("limit", [0, -1, True, "1GB"])
def test_max_memory_refuses_bad_limits(limit):
    from nbpar.scheduling import MaxMemoryScheduler
    with pytest.raises(ValueError):
        MaxMemoryScheduler(limit)


@pytest.mark.parametrize("durations,order", [
    ([1, 5, 3], [1, 2, 0]),
    ([2, 2, 9, 1], [2, 0, 1, 3]),  # stable among equals
    (None, None),                   # nothing declared: input order
])
def test_longer_first_order(durations, order):
    from nbpar.scheduling import LongerFirstScheduler
    assert LongerFirstScheduler().order(_Job(durations=durations)) == order


def test_jobs_limits_with_one_name_share_a_key():
    from nbpar.scheduling import JobsLimit
    a, b, c = JobsLimit(2, "ftp"), JobsLimit(3, "ftp"), JobsLimit(2)
    assert a.key == b.key and a.key != c.key and c.key != JobsLimit(2).key

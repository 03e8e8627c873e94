"""The Boss's pure state machine, driven by tables: events in, instructions out.

Modelled on dask/distributed's worker_state_machine tests: build a `BossState`, feed it events
with an explicit clock, and assert the exact instructions it returns and the state it keeps.
Nothing here starts a process, a thread or a timer; the small `Pool` driver below plays the
part of the Boss thread and of the workers.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from concurrent.futures.process import BrokenProcessPool

import pytest

from nbpar.sources import IterSource, ListSource

from nbpar import state as st
from nbpar.errors import (RemoteTraceback, SerializationError, StoppedError, TaskTimeoutError,
                          WorkerDiedError, capture)
from nbpar.failures import FailurePolicy
from nbpar.reports import Ledger, Report, TaskError, WorkerInfo
from nbpar.scheduling import AdaptiveChunker, MaxThreadsScheduler
from nbpar.signals import Signal

_job_ids = itertools.count()


def result(item):
    """What the (imaginary) function returns for an item."""
    return ("r", item)


def _task(x):
    return result(x)


def make_job(items, *, chunk_size=None, streaming=False):
    """A map's Job built the way pool.py's `_new_job` builds it for a list."""
    items = list(items)
    job = st.Job(next(_job_ids), _task, ListSource(items), Ledger(len(items), items, None, True),
                 total=len(items), streaming=streaming, chunker=AdaptiveChunker(chunk_size),
                 func_name="tests._task")
    job.handle = object()  # the caller's side: opaque to the state
    return job


def make_lazy_job(pairs, *, chunk_size=None):
    """A map over an iterator of (index, item) whose length is unknown."""
    source = IterSource(item for _, item in pairs)
    job = st.Job(next(_job_ids), _task, source, Ledger(None, None, None, True), total=None,
                 chunker=AdaptiveChunker(chunk_size), func_name="tests._task")
    job.handle = object()
    return job


def summary(out):
    """Instructions as short tuples, easy to compare in tables."""
    rows = []
    for instr in out:
        if isinstance(instr, st.Dispatch):
            rows.append(("Dispatch", instr.worker_id, list(instr.batch.indices), instr.queued))
        elif isinstance(instr, (st.StartWorker, st.KillWorker, st.RetireWorker, st.ForgetFunc)):
            rows.append((type(instr).__name__, instr.worker_id))
        elif isinstance(instr, st.FinishJob):
            rows.append(("FinishJob", instr.job.id,
                         None if instr.error is None else type(instr.error).__name__))
        else:
            rows.append((type(instr).__name__,))
    return rows


def of(out, kind):
    return [i for i in out if isinstance(i, kind)]


def ids(out, kind):
    return [i.worker_id for i in of(out, kind)]


def dispatched(out):
    return [(i.worker_id, list(i.batch.indices), i.queued) for i in of(out, st.Dispatch)]


def finish(out):
    fins = of(out, st.FinishJob)
    assert len(fins) == 1, summary(out)
    return fins[0]


class Pool:
    """Plays the Boss thread and the workers around a BossState."""

    def __init__(self, n=2, *, validate=True, **options):
        self.state = st.BossState(n, **options)
        self.validate = validate  # check the machine's invariants after every step
        self.now = 0.0
        self.pids = itertools.count(1000)
        self.items_by_pid: dict = {}

    def feed(self, event, now=None):
        if now is not None:
            self.now = now
        out = self.state.handle(event, self.now)
        if self.validate:
            self.state.validate_state()  # every step keeps the machine's invariants
        return out

    def submit(self, job, now=None):
        return self.feed(st.JobSubmitted(job), now)

    def ready(self, *wids, now=None):
        out = []
        for wid in wids:
            out += self.feed(st.WorkerReady(wid, next(self.pids)), now)
        return out

    def head(self, wid):
        return self.state.slots[wid].queue[0]

    def done(self, wid, *, elapsed=0.001, now=None):
        batch = self.head(wid)
        pid = self.state.slots[wid].pid
        self.items_by_pid[pid] = self.items_by_pid.get(pid, 0) + len(batch.items)
        return self.feed(st.BatchDone(wid, batch.batch_id, [result(x) for x in batch.items],
                                      elapsed), now)

    def died(self, wid, exitcode=-9, position=None, now=None):
        return self.feed(st.WorkerDied(wid, exitcode, position), now)

    def signal(self, sig, reply=None, now=None):
        return self.feed(st.SignalReceived(sig, reply), now)

    def report(self):
        return self.state.report(None, self.now)

    def play(self, out, *, per_item=0.001, check=None, max_steps=10_000):
        """Be the workers until nothing more happens: start what is started, let retired and
        killed workers die, run the head batch of the lowest busy worker. Returns every
        instruction seen (`out` included)."""
        log, todo = list(out), deque(out)
        for _ in range(max_steps):
            while todo:
                instr = todo.popleft()
                if isinstance(instr, st.StartWorker):
                    new = self.ready(instr.worker_id)
                elif isinstance(instr, st.RetireWorker):
                    new = self.died(instr.worker_id, 0)
                elif isinstance(instr, st.KillWorker):
                    if not self.state.slots[instr.worker_id].alive:
                        continue
                    new = self.died(instr.worker_id, -9)
                else:
                    continue
                log += new
                todo.extend(new)
                if check:
                    check(self.state)
            busy = [s for s in self.state.slots if s.queue and s.kill_reason is None]
            if not busy:
                return log
            new = self.done(busy[0].id, elapsed=per_item * len(busy[0].queue[0].items))
            log += new
            todo.extend(new)
            if check:
                check(self.state)
        raise AssertionError("the state machine never settled")


def _explode(x):
    raise ValueError(f"bad item {x}")


def _no_gpu():
    raise OSError("no GPU here")


def payload_of(func, *args):
    """An ErrorPayload captured from a real exception, as a worker sends it."""
    try:
        func(*args)
    except BaseException as exc:  # noqa: BLE001
        return capture(exc)
    raise AssertionError("expected an exception")


# ----------------------------------------------------------------------------- starting

@pytest.mark.parametrize("n", [1, 2, 4])
def test_submitted_job_starts_a_worker_per_slot(n):
    pool = Pool(n)
    out = pool.submit(make_job(range(10)))
    assert summary(out) == [("StartWorker", i) for i in range(n)]
    assert [s.state for s in pool.state.slots] == ["starting"] * n
    assert pool.report().status == "running"


def test_nothing_is_dispatched_before_a_worker_is_ready():
    pool = Pool(2)
    pool.submit(make_job(range(10)))
    assert of(pool.feed(st.Tick(), now=1.0), st.Dispatch) == []


def test_ready_worker_gets_a_single_item_while_nothing_is_measured():
    pool = Pool(2)
    job = make_job(range(100))
    pool.submit(job)
    out0 = pool.ready(0)
    assert dispatched(out0) == [(0, [0], False)]  # one item, and no prefetch: nothing measured
    assert of(out0, st.Dispatch)[0].send_func is True
    out1 = pool.ready(1)
    assert dispatched(out1) == [(1, [1], False)]
    assert of(out1, st.Dispatch)[0].send_func is True
    assert pool.state.slots[0].state == pool.state.slots[1].state == "busy"
    assert set(job.in_flight) == {b.batch_id for s in pool.state.slots for b in s.queue}


def test_the_function_is_sent_once_per_worker_process():
    pool = Pool(1, keep_alive=True)
    pool.submit(make_job(range(10), chunk_size=1))
    first = of(pool.ready(0), st.Dispatch)
    later = of(pool.done(0, elapsed=0.5), st.Dispatch)  # slow: no prefetch
    assert [d.send_func for d in first + later] == [True, False]


# ----------------------------------------------------------------------------- batching

# per-item times are powers of two so the chunker's arithmetic is exact
# (per_item, first batch sizes in dispatch order, does a worker get a second batch queued)
GROWTH_TABLE = [
    (2 ** -17, [1, 8, 64, 512, 2621, 2621], True),  # tiny tasks: x8 per batch up to ~20 ms
    (2 ** -8, [1, 5, 5, 5], True),                  # ~4 ms: 5 items make a 20 ms batch
    (2 ** -5, [1, 1, 1, 1], True),                  # ~31 ms: one item, still short: prefetch
    (2 ** -4, [1, 1, 1, 1], False),                 # ~62 ms: long batches are not queued
    (2 ** -3, [1, 1, 1, 1], False),
]


@pytest.mark.parametrize("per_item, sizes, prefetch", GROWTH_TABLE)
def test_batches_grow_from_measured_times(per_item, sizes, prefetch):
    pool = Pool(1, keep_alive=True)
    pool.submit(make_job(range(10 ** 6)))
    out = pool.ready(0)
    seen = of(out, st.Dispatch)
    for _ in range(8):
        batch = pool.head(0)
        seen += of(pool.done(0, elapsed=per_item * len(batch.items)), st.Dispatch)
        assert len(pool.state.slots[0].queue) <= 2  # never more than 2 batches per worker
    got = [len(d.batch.items) for d in seen]
    assert got[:len(sizes)] == sizes
    assert all(b <= AdaptiveChunker.growth * a for a, b in zip(got, got[1:]))
    assert any(d.queued for d in seen) is prefetch


def test_never_more_than_two_batches_queued_per_worker():
    pool = Pool(2, keep_alive=True)
    pool.submit(make_job(range(10 ** 5)))
    pool.ready(0, 1)

    def at_most_two(state):
        assert all(len(s.queue) <= 2 for s in state.slots)

    pool.play([], per_item=2 ** -17, check=at_most_two)
    assert pool.state.last_job.ledger.done == 10 ** 5


def test_tail_batches_shrink_so_workers_finish_together():
    pool = Pool(2, keep_alive=True)
    job = make_job(range(40))
    log = pool.submit(job) + pool.play(pool.ready(0, 1), per_item=2 ** -10)  # ~1 ms items
    sizes = [len(d.batch.items) for d in of(log, st.Dispatch)]
    assert sum(sizes) == 40
    assert max(sizes) <= math.ceil(40 / (2 * 2))  # never more than a share of what remains
    assert sizes[-1] == 1
    assert finish(log).error is None


def test_a_map_of_tiny_items_is_not_cut_finer_than_the_floor_at_its_end():
    """0.24 µs items: batches under 0.2 ms would cost the Boss more than they balance."""
    pool = Pool(2, keep_alive=True)
    job = make_job(range(20_000))
    log = pool.submit(job) + pool.play(pool.ready(0, 1), per_item=2 ** -22)
    sizes = [len(d.batch.items) for d in of(log, st.Dispatch)]
    assert sum(sizes) == 20_000
    tail = sizes[sizes.index(max(sizes)):-1]  # from the largest on, the last one aside
    assert min(tail) >= int(AdaptiveChunker.floor / 2 ** -22)
    assert len(sizes) < 20  # without the floor: 37 batches, the last three of 1 item
    assert finish(log).error is None


def test_fixed_chunk_size_is_used_as_is():
    pool = Pool(2, keep_alive=True)
    pool.submit(make_job(range(10), chunk_size=4))
    assert dispatched(pool.ready(0, 1)) == [(0, [0, 1, 2, 3], False), (1, [4, 5, 6, 7], False)]
    assert dispatched(pool.done(0, elapsed=0.5)) == [(0, [8, 9], False)]


def test_results_are_kept_in_input_order():
    pool = Pool(2, keep_alive=True)
    job = make_job("abcd", chunk_size=1)
    pool.submit(job)
    pool.ready(0, 1)                     # w0: a, w1: b
    pool.done(1, elapsed=0.5)            # b first, then w1 takes c
    pool.done(1, elapsed=0.5)            # c, then w1 takes d
    pool.done(1, elapsed=0.5)            # d
    out = pool.done(0, elapsed=0.5)      # a last
    assert job.ledger.ordered_results() == [result(x) for x in "abcd"]
    assert job.ledger.completion_order() == [result(x) for x in "bcda"]
    fin = finish(out)
    assert fin.error is None
    assert fin.report.results == {i: result(x) for i, x in enumerate("abcd")}
    assert fin.report.status == "finished" and fin.report.done == 4 and fin.report.pending == []


def test_streaming_job_delivers_each_batch():
    pool = Pool(1, keep_alive=True)
    job = make_job("ab", chunk_size=1, streaming=True)
    pool.submit(job)
    pool.ready(0)
    out = pool.done(0, elapsed=0.5)
    (deliver,) = of(out, st.Deliver)
    assert deliver.job is job
    assert list(deliver.indices) == [0] and deliver.results == [result("a")]


# ---------------------------------------------------------------------- events taken together

def _single_call(x):
    job = make_job([x], streaming=True)  # as pool.py makes a submit/apply_async
    job.single = True
    return job


def _settled_pool():
    pool = Pool(2, keep_alive=True)
    pool.submit(make_job(range(4), chunk_size=1))
    pool.play(pool.ready(0, 1))  # both workers up and idle again
    return pool


def test_a_burst_of_calls_taken_together_is_dispatched_in_one_advance():
    """handle_many notes every event first and hands out work once, after the last: the
    same work goes to the same workers as when each call is taken alone."""
    alone, together = _settled_pool(), _settled_pool()
    calls_alone = [_single_call(x) for x in range(5)]
    calls_together = [_single_call(x) for x in range(5)]
    out_alone = []
    for job in calls_alone:
        out_alone += alone.submit(job)
    out_together = together.state.handle_many([st.JobSubmitted(j) for j in calls_together],
                                              together.now)
    together.state.validate_state()
    by_job = {j.id: k for k, j in enumerate(calls_alone)}
    by_job.update({j.id: k for k, j in enumerate(calls_together)})
    assert [(i.worker_id, by_job[i.batch.job.id], i.queued) for i in of(out_together, st.Dispatch)
            ] == [(i.worker_id, by_job[i.batch.job.id], i.queued)
                  for i in of(out_alone, st.Dispatch)]
    assert len(of(out_together, st.Dispatch)) == 4  # two a worker: one running, one queued
    # each event is a step of its own in the story, numbered in order; the one advance's
    # instructions are told with the last
    steps = list(together.state.story)[-5:]
    assert [sid for sid, *_ in steps] == list(range(steps[0][0], steps[0][0] + 5))
    assert [len(told) for *_, told in steps] == [0, 0, 0, 0, 4]


def test_results_read_together_are_recorded_each_and_the_maps_finish_once():
    """Two results of one worker taken in one step: both recorded and delivered, the worker
    given the next work and each finished call finished once, as when taken one by one."""
    pool = _settled_pool()
    calls = [_single_call(x) for x in range(5)]  # two a worker, one waiting
    for job in calls:
        pool.submit(job)
    head, queued = pool.state.slots[0].queue
    waiting = [j for j in calls if not j.in_flight]
    out = pool.state.handle_many(
        [st.BatchDone(0, b.batch_id, [result(x) for x in b.items], 0.001)
         for b in (head, queued)], pool.now)
    pool.state.validate_state()
    assert [i.job for i in of(out, st.Deliver)] == [head.job, queued.job]
    assert sorted(f.job.id for f in of(out, st.FinishJob)) == sorted((head.job.id,
                                                                     queued.job.id))
    assert all(j.status == "finished" for j in (head.job, queued.job))
    assert [(i.worker_id, i.batch.job) for i in of(out, st.Dispatch)] == [(0, waiting[0])]


# ----------------------------------------------------------------------------- held prefetches

def _prefetching(n=1):
    """A pool of `n` workers on tiny tasks, run until worker 0 gets a batch queued behind
    the one it runs: (pool, that queued Dispatch)."""
    pool = Pool(n, keep_alive=True)
    pool.submit(make_job(range(10 ** 6)))
    out = pool.ready(*range(n))
    for _ in range(8):
        queued = [d for d in of(out, st.Dispatch) if d.queued and d.worker_id == 0]
        if queued:
            return pool, queued[0]
        out = pool.done(0, elapsed=2 ** -17 * len(pool.head(0).items))
    raise AssertionError("no batch was queued")


def test_only_a_queued_batch_may_be_held_back_and_the_machine_says_above_what_size():
    pool, queued = _prefetching()
    assert queued.hold_over == st.PREFETCH_MAX_BYTES == pool.state.prefetch_max_bytes
    first = pool.head(0)
    assert first is not queued.batch
    pool.state.prefetch_max_bytes = 1000
    out = pool.done(0, elapsed=2 ** -17 * len(first.items))
    # the running batch never waits: it goes at once whatever its size
    assert [d.hold_over for d in of(out, st.Dispatch) if not d.queued] == []
    assert [d.hold_over for d in of(out, st.Dispatch) if d.queued] == [1000]


def test_a_held_batch_is_sent_when_the_batch_before_it_is_done():
    pool, queued = _prefetching()
    held = queued.batch
    running = pool.head(0)
    assert pool.feed(st.DispatchHeld(0, held.batch_id, 10 ** 6)) == []  # nothing sent yet
    assert pool.state.withheld == {0: held.batch_id}
    out = pool.done(0, elapsed=2 ** -17 * len(running.items))
    sends = [(i.worker_id, i.batch_id) for i in of(out, st.SendHeld)]
    assert sends == [(0, held.batch_id)]
    assert pool.head(0) is held and pool.state.withheld == {}
    # sent before anything queued behind it in the same step (the worker gets them in order)
    kinds = [type(i) for i in out if isinstance(i, (st.SendHeld, st.Dispatch))]
    assert kinds[0] is st.SendHeld


def test_a_held_batch_is_sent_when_the_batch_before_it_failed():
    pool, queued = _prefetching()
    held, running = queued.batch, pool.head(0)
    pool.feed(st.DispatchHeld(0, held.batch_id, 10 ** 6))
    out = pool.feed(st.BatchFailed(0, running.batch_id, [], payload_of(_explode, 1), 0.01))
    assert [(i.worker_id, i.batch_id) for i in of(out, st.SendHeld)] == [(0, held.batch_id)]


def test_a_batch_held_after_the_one_before_it_is_gone_is_sent_at_once():
    """Both batches of a worker dispatched in one step; the first would not pickle, so its
    worker is free before the Boss says it held the second: waiting would hang the map."""
    pool, queued = _prefetching()
    held, running = queued.batch, pool.head(0)
    pool.feed(st.DispatchFailed(0, running.batch_id, SerializationError("no pickle")))
    out = pool.feed(st.DispatchHeld(0, held.batch_id, 10 ** 6))
    assert [(i.worker_id, i.batch_id) for i in of(out, st.SendHeld)] == [(0, held.batch_id)]
    assert pool.state.withheld == {}


def test_a_held_batch_of_a_dead_worker_is_forgotten_and_its_items_run_again():
    pool, queued = _prefetching()
    job = pool.state.last_job
    job.failure = FailurePolicy(on_error="collect")  # the map goes on after the death
    held = queued.batch
    pool.feed(st.DispatchHeld(0, held.batch_id, 10 ** 6))
    out = pool.died(0)
    assert pool.state.withheld == {} and of(out, st.SendHeld) == []
    assert list(held.indices) in [list(indices) for indices, _ in job.requeued]
    again = of(pool.ready(0), st.Dispatch)[0]  # the new worker gets them, sent as usual
    assert list(again.batch.indices)[:len(held.indices)] == list(held.indices)
    assert not again.queued and again.hold_over is None


# ----------------------------------------------------------------------------- no workers

CLUSTER = "the Dask cluster at tcp://10.0.0.1:8786"
SETTING = "dask.config 'nbpar.no-workers-timeout'"


def no_workers(wid, since, timeout=30.0):
    """A slot's look: its cluster has had no workers since `since`."""
    return st.ClusterEmpty(wid, since, timeout, CLUSTER, SETTING)


def _on_a_cluster(failure=None):
    """Two slots, each with a batch of two items of a 10-item map (no prefetch: slow)."""
    pool = Pool(2, keep_alive=True)
    job = make_job(range(10), chunk_size=2)
    job.failure = failure
    pool.submit(job, now=0.0)
    pool.ready(0, 1, now=0.0)
    return pool, job


# (looks of slot 0 as (now, since) -- None: workers again --, the look at which its batch
# fails, or None); the wait allowed is 30 s
NO_WORKERS_TABLE = [
    ([(5, 5), (20, 5), (34.9, 5), (35, 5)], 3),     # fails at the first look 30 s on
    ([(5, 5), (40, 5)], 1),                         # however late that look comes
    ([(5, 5), (20, None), (40, 25), (54, 25)], None),  # workers came back: a new spell
    ([(5, 5), (20, None), (40, 25), (55, 25)], 3),
    ([(5, 5), (30, 20), (35, 20)], 2),              # a spell is timed from its first look
]


@pytest.mark.parametrize("looks, fails_at", NO_WORKERS_TABLE)
def test_a_cluster_without_workers_fails_a_slots_batches_once_the_wait_is_over(looks,
                                                                                fails_at):
    pool, job = _on_a_cluster()
    batch = pool.head(0)
    for k, (now, since) in enumerate(looks):
        event = st.ClusterBack(0) if since is None else no_workers(0, since)
        out = pool.feed(event, now=now)
        if k != fails_at:
            assert summary(out) == [], (k, now)
            continue
        # the batch fails as a failed task does: the map fails, its other slot is killed,
        # and the slot drops the batch
        assert [(type(i).__name__, i.worker_id) for i in out] == [
            ("DropBatches", 0), ("KillWorker", 1)]
        assert out[0].batch_ids == (batch.batch_id,)
        fin = finish(pool.died(1, now=now))
        assert isinstance(fin.error, WorkerDiedError) and fin.error.worker_id == 0
        assert str(fin.error) == (
            f"{CLUSTER} has had no workers for 30 s, so its batches cannot run: start or "
            f"scale its workers (the wait is {SETTING})")
        assert "raised by item 0 (index 0) on worker 0" in fin.error.__notes__[-1]
        assert fin.report.failed == 1 and fin.report.errors[0].index == 0
        return
    assert fails_at is None
    assert pool.head(0) is batch and job.active


def test_a_batch_failed_for_no_workers_is_retried_and_fails_again_at_the_next_look():
    pool, job = _on_a_cluster(FailurePolicy(retries=1))
    first = pool.head(0)
    out = pool.feed(no_workers(0, 0.0), now=30.0)
    # item 0 runs again (and item 1, never run): given to the slot again at once
    assert [(i.worker_id, list(i.batch_ids)) for i in of(out, st.DropBatches)] == [
        (0, [first.batch_id])]
    assert dispatched(out) == [(0, [0, 1], False)]
    assert [(e.index, e.type, e.attempt) for e in job.retried] == [(0, "WorkerDiedError", 1)]
    # the cluster is still empty: the same spell fails the new batch at the slot's next look
    again = pool.head(0)
    out = pool.feed(no_workers(0, 0.0), now=32.0)
    assert [list(i.batch_ids) for i in of(out, st.DropBatches)] == [[again.batch_id]]
    assert of(out, st.KillWorker) and job.stopping == "failed"


def test_every_batch_waiting_on_the_slot_fails_the_one_queued_behind_too():
    pool, queued = _prefetching()
    job = pool.state.last_job
    job.failure = FailurePolicy(on_error="collect")  # the map goes on: both are failed
    running, behind = pool.head(0), queued.batch
    out = pool.feed(no_workers(0, pool.now), now=pool.now + 30)
    assert [i.batch_ids for i in of(out, st.DropBatches)] == [
        (running.batch_id, behind.batch_id)]
    assert [(e.index, e.type) for e in job.errors] == [
        (running.indices[0], "WorkerDiedError"), (behind.indices[0], "WorkerDiedError")]
    assert of(out, st.KillWorker) == []  # the slot lives on: its cluster may get workers


def test_a_slot_that_dies_forgets_its_spell_and_a_new_one_looks_afresh():
    pool, job = _on_a_cluster(FailurePolicy(retries=3))
    pool.feed(no_workers(0, 0.0), now=0.0)
    assert set(pool.state.no_workers.spells) == {0}
    pool.died(0, now=10.0)
    assert pool.state.no_workers.spells == {}
    pool.ready(0, now=10.0)
    assert summary(pool.feed(no_workers(0, 11.0), now=31.0)) == []  # 20 s of its own spell
    assert of(pool.feed(no_workers(0, 11.0), now=41.0), st.DropBatches)


# ----------------------------------------------------------------------------- finishing

def test_finish_job_at_once_with_keep_alive():
    pool = Pool(2, keep_alive=True)
    job = make_job(range(4), chunk_size=2)
    pool.submit(job)
    pool.ready(0, 1)
    assert of(pool.done(0), st.FinishJob) == []
    out = pool.done(1)
    assert summary(out) == [("FinishJob", job.id, None)]  # workers keep the function
    assert job.status == "finished"
    assert [s.state for s in pool.state.slots] == ["idle", "idle"]  # kept for the next map


def test_without_keep_alive_finish_waits_for_the_workers_to_retire():
    pool = Pool(2, keep_alive=False)
    job = make_job(range(4), chunk_size=2)
    pool.submit(job)
    pool.ready(0, 1)
    pool.done(0)
    out = pool.done(1)
    assert summary(out) == [("RetireWorker", 0), ("RetireWorker", 1)]
    assert pool.feed(st.WorkerExited(0, "bye 0", None)) == []
    assert pool.died(0, 0) == []
    assert pool.feed(st.WorkerExited(1, "bye 1", None)) == []
    fin = finish(pool.died(1, 0))
    assert fin.error is None
    assert fin.report.status == "finished"
    assert fin.report.exit_results == ("bye 0", "bye 1")
    assert fin.report.results == {i: result(i) for i in range(4)}
    assert pool.state.history[-1] is fin.report


def test_a_function_is_sent_once_per_worker_and_the_oldest_forgotten():
    pool = Pool(1, keep_alive=True)
    sends, forgets = [], []
    for n in range(st.FUNCS_PER_WORKER + 2):
        job = make_job("a", chunk_size=1)
        job.func_key = n % (st.FUNCS_PER_WORKER + 1)  # key 0 comes back once, at the end
        out = pool.submit(job) + (pool.ready(0) if n == 0 else [])
        sends += [d.send_func for d in of(out, st.Dispatch)]
        forgets += [f.key for f in of(out, st.ForgetFunc)]
        pool.done(0)
    assert sends == [True] * (st.FUNCS_PER_WORKER + 2)  # key 0 was forgotten, so sent again
    assert forgets == [0, 1]
    again = make_job("a", chunk_size=1)
    again.func_key = 2
    assert [d.send_func for d in of(pool.submit(again), st.Dispatch)] == [False]


def test_a_warm_function_starts_with_measured_batches():
    pool = Pool(1, keep_alive=True)
    first = make_job(range(100_000))
    first.func_key = 7
    pool.submit(first)
    pool.ready(0)
    while first.active:
        pool.done(0, elapsed=1e-6 * len(pool.state.slots[0].queue[0].items))
    second = make_job(range(100_000))
    second.func_key = 7
    dispatch = of(pool.submit(second), st.Dispatch)[0]
    assert len(dispatch.batch.items) > 1000  # not 1 again: the function's speed is known


# ----------------------------------------------------------------------------- signals

def test_halt_stops_dispatch_and_resume_restarts_it():
    pool = Pool(1, keep_alive=True)
    job = make_job(range(10), chunk_size=1)
    pool.submit(job)
    pool.ready(0)
    assert pool.signal(Signal.HALT) == []
    assert pool.report().status == "halted"
    out = pool.done(0, elapsed=0.5)
    assert of(out, st.Dispatch) == [] and of(out, st.FinishJob) == []
    assert pool.state.slots[0].state == "idle"
    assert of(pool.feed(st.Tick(), now=5.0), st.Dispatch) == []
    out = pool.signal(Signal.RESUME)
    assert dispatched(out) == [(0, [1], False)]
    assert pool.report().status == "running"


@pytest.mark.parametrize("keep_alive", [True, False])
def test_stop_lets_running_tasks_finish_and_reports_the_unstarted(keep_alive):
    pool = Pool(2, keep_alive=keep_alive)
    job = make_job(range(6), chunk_size=1)
    pool.submit(job)
    pool.ready(0, 1)                               # 0 and 1 run
    out = pool.signal(Signal.STOP)
    assert of(out, st.KillWorker) == [] and of(out, st.FinishJob) == []
    log = pool.done(0, elapsed=0.5) + pool.done(1, elapsed=0.5)
    log = pool.play(log)
    assert of(log, st.Dispatch) == []              # nothing new started after STOP
    fin = finish(log)
    assert isinstance(fin.error, StoppedError)
    assert fin.error.report is fin.report
    report = fin.report
    assert report.status == "stopped"
    assert (report.done, report.failed, report.total) == (2, 0, 6)
    assert report.results == {0: result(0), 1: result(1)}
    assert report.pending == [2, 3, 4, 5]
    assert report.pending_indices == [2, 3, 4, 5]
    assert job.status == "stopped"


def test_stop_rightnow_kills_busy_workers_and_counts_their_items_as_pending():
    pool = Pool(3, keep_alive=True)
    job = make_job(range(3), chunk_size=1)
    pool.submit(job)
    pool.ready(0, 1, 2)                            # w0: 0, w1: 1, w2: 2
    pool.done(2, elapsed=0.5)                      # w2 finished and is idle
    out = pool.signal(Signal.STOP_RIGHTNOW)
    assert summary(out) == [("KillWorker", 0), ("KillWorker", 1)]  # not the idle one
    assert of(pool.died(0, -9), st.FinishJob) == []
    fin = finish(pool.died(1, -9))
    assert isinstance(fin.error, StoppedError)
    report = fin.report
    assert report.status == "stopped"
    assert (report.done, report.failed, report.errors) == (1, 0, ())
    assert report.results == {2: result(2)}
    assert report.pending == [0, 1]                # interrupted: pending, not failed


def test_cancel_job_stops_that_map_only():
    pool = Pool(1, keep_alive=True)
    job = make_job(range(5), chunk_size=1)
    pool.submit(job)
    pool.ready(0)
    assert pool.feed(st.CancelJob(job.id)) == []
    fin = finish(pool.done(0, elapsed=0.5))
    assert isinstance(fin.error, StoppedError)
    assert fin.report.pending == [1, 2, 3, 4]


def test_send_report_replies_with_a_snapshot():
    pool = Pool(2, keep_alive=True)
    job = make_job("abcd", chunk_size=1)
    pool.submit(job)
    pool.ready(0)
    token = object()
    out = pool.signal(Signal.SEND_REPORT, token)
    assert len(out) == 1 and isinstance(out[0], st.Reply)
    assert out[0].reply is token
    first = out[0].report
    assert isinstance(first, Report)
    assert (first.status, first.total, first.done, first.failed) == ("running", 4, 0, 0)
    assert first.workers[0] == WorkerInfo(0, 1000, "busy", 0, 0.0, "a", 0)
    assert first.workers[1].state == "starting"
    pool.done(0, elapsed=0.25)
    (reply,) = pool.signal(Signal.SEND_REPORT, token)
    assert (reply.report.done, reply.report.results) == (1, {0: result("a")})
    assert reply.report.workers[0].tasks_done == 1
    assert (first.done, first.results) == (0, {})  # the earlier snapshot did not move


def test_report_of_an_idle_pool():
    pool = Pool(2)
    (reply,) = pool.signal(Signal.SEND_REPORT, "r")
    assert reply.report.status == "idle"
    assert [w.state for w in reply.report.workers] == ["dead", "dead"]


# ----------------------------------------------------------------------------- failures

def test_batch_failed_fails_the_map_with_the_rebuilt_exception():
    pool = Pool(2, keep_alive=True)
    job = make_job(range(6), chunk_size=3)
    pool.submit(job)
    pool.ready(0, 1)                               # w0: 0 1 2, w1: 3 4 5
    payload = payload_of(_explode, 1)
    out = pool.feed(st.BatchFailed(0, pool.head(0).batch_id, [result(0)], payload, 0.01))
    assert summary(out) == [("KillWorker", 1)]     # the rest of the map is stopped
    assert job.ledger.done == 1                    # what finished before the error is kept
    fin = finish(pool.died(1, -9))
    err = fin.error
    assert type(err) is ValueError and str(err) == "bad item 1"
    assert "nbpar: raised by item 1 (index 1) on worker 0" in err.__notes__
    assert isinstance(err.__cause__, RemoteTraceback)
    assert "_explode" in err.__cause__.tb and "ValueError: bad item 1" in err.__cause__.tb
    report = fin.report
    assert (report.status, report.done, report.failed) == ("failed", 1, 1)
    assert report.results == {0: result(0)}
    assert report.errors == (TaskError(1, 1, "ValueError", "bad item 1", err.__cause__.tb, 0),)
    assert report.pending == [2, 3, 4, 5]         # the killed batch is pending, not failed;
    assert report._unfinished_pairs()[0] == (1, 1)  # the failed item is not, but reruns


def test_only_busy_workers_of_the_failing_map_are_killed():
    pool = Pool(3, keep_alive=True)
    job = make_job(range(2), chunk_size=1)
    pool.submit(job)
    pool.ready(0, 1, 2)                            # w2 has nothing to do
    out = pool.feed(st.BatchFailed(0, pool.head(0).batch_id, [], payload_of(_explode, 0), 0.1))
    assert ids(out, st.KillWorker) == [1]


def test_dispatch_failed_fails_the_map_with_that_error():
    pool = Pool(2, keep_alive=True)
    job = make_job(range(4), chunk_size=1)
    pool.submit(job)
    pool.ready(0, 1)
    err = SerializationError("item 1 cannot be pickled")
    err.item, err.index = 1, 1
    out = pool.feed(st.DispatchFailed(1, pool.head(1).batch_id, err))
    assert ids(out, st.KillWorker) == [0]
    fin = finish(pool.died(0))
    assert fin.error is err
    assert [(e.index, e.type) for e in fin.report.errors] == [(1, "SerializationError")]


@pytest.mark.parametrize("exitcode, says", [
    (-11, "killed by signal SIGSEGV(-11)"),
    (-9, "killed by signal SIGKILL(-9)"),
    (-6, "killed by signal SIGABRT(-6)"),
    (1, "exit code 1"),
    (None, "unknown exit status"),
])
def test_worker_died_while_busy_names_item_worker_and_signal(exitcode, says):
    pool = Pool(1, keep_alive=True)
    job = make_job("abcd", chunk_size=2)
    pool.submit(job)
    pool.ready(0)                                  # w0: a b
    out = pool.died(0, exitcode, position=1)       # it was running b
    err = finish(out).error
    assert isinstance(err, WorkerDiedError) and isinstance(err, BrokenProcessPool)
    assert (err.worker_id, err.exitcode, err.item, err.index) == (0, exitcode, "b", 1)
    assert "worker 0" in str(err) and "'b' (index 1)" in str(err) and says in str(err)
    assert ids(out, st.StartWorker) == [0]         # replaced: the pool stays usable
    assert finish(out).report.errors[0].type == "WorkerDiedError"


@pytest.mark.parametrize("position, item", [(None, "a"), (0, "a"), (1, "b"), (7, "a")])
def test_worker_died_names_the_item_at_its_position(position, item):
    pool = Pool(1, keep_alive=True)
    pool.submit(make_job("abcd", chunk_size=2))
    pool.ready(0)
    assert finish(pool.died(0, -11, position)).error.item == item


def test_worker_died_kills_the_other_busy_workers_of_the_map():
    pool = Pool(2, keep_alive=True)
    job = make_job(range(4), chunk_size=1)
    pool.submit(job)
    pool.ready(0, 1)
    out = pool.died(0, -11)
    assert ids(out, st.KillWorker) == [1]
    assert isinstance(finish(pool.died(1, -9)).error, WorkerDiedError)
    assert job.failed == 1                         # w1's interrupted item is not a failure


def test_task_timeout_kills_the_worker_and_fails_the_map():
    pool = Pool(1, task_timeout=5, keep_alive=True)
    job = make_job(range(3))
    pool.submit(job)
    assert dispatched(pool.ready(0, now=0.0)) == [(0, [0], False)]
    out = pool.done(0, elapsed=0.001, now=1.0)     # short, yet one item and no prefetch
    assert dispatched(out) == [(0, [1], False)]
    assert pool.state.next_deadline() == 6.0
    assert pool.feed(st.Tick(), now=5.9) == []
    out = pool.feed(st.Tick(), now=6.0)
    assert summary(out) == [("KillWorker", 0)]
    out = pool.died(0, -9, now=6.1)
    err = finish(out).error
    assert isinstance(err, TaskTimeoutError) and isinstance(err, TimeoutError)
    assert "item 1 (index 1)" in str(err) and "task_timeout=5" in str(err)
    assert "worker 0" in str(err)
    report = finish(out).report
    assert [(e.index, e.type, e.worker_id) for e in report.errors] == [
        (1, "TaskTimeoutError", 0)]
    assert report.results == {0: result(0)}
    assert ids(out, st.StartWorker) == [0]


def test_task_timeout_counts_from_the_tasks_own_start_not_its_dispatch():
    pool = Pool(1, task_timeout=0.1, clock_at_start=True, setup_timeout=30)
    pool.submit(make_job(range(2)))
    assert dispatched(pool.ready(0, now=0.0)) == [(0, [0], False)]
    assert pool.state.next_deadline() == 30.0      # set-up: unpickling, imports
    assert pool.feed(st.Tick(), now=1.5) == []     # a 1.5 s import is no task timeout
    pool.feed(st.BatchStarted(0, pool.head(0).batch_id), now=1.5)
    assert pool.state.next_deadline() == pytest.approx(1.6)
    out = pool.done(0, elapsed=0.01, now=1.51)
    assert dispatched(out) == [(0, [1], False)]
    assert pool.state.next_deadline() == pytest.approx(31.51)


def test_a_hang_in_set_up_is_named_as_such():
    pool = Pool(1, task_timeout=0.1, clock_at_start=True, setup_timeout=30)
    pool.submit(make_job(range(2)))
    pool.ready(0, now=0.0)
    assert pool.feed(st.Tick(), now=29.9) == []
    assert summary(pool.feed(st.Tick(), now=30.0)) == [("KillWorker", 0)]
    err = finish(pool.died(0, -9, now=30.1)).error
    assert isinstance(err, TaskTimeoutError)
    assert "item 0 (index 0) did not start within 30 s" in str(err) and "set-up" in str(err)


def test_a_crash_in_set_up_is_named_as_such():
    pool = Pool(1, task_timeout=0.1, clock_at_start=True)
    pool.submit(make_job(range(2)))
    pool.ready(0, now=0.0)
    err = finish(pool.died(0, -11, now=0.5)).error
    assert isinstance(err, WorkerDiedError)
    assert "set-up (unpickling the function or the items) of item 0 (index 0)" in str(err)


def test_deadlines_follow_thousands_of_timed_tasks_without_piling_up():
    pool = Pool(4, task_timeout=60, keep_alive=True)
    pool.submit(make_job(range(2000)))
    pool.ready(0, 1, 2, 3, now=0.0)
    for k in range(1996):
        wid = k % 4
        pool.done(wid, now=1.0 + k / 100)
        started = [pool.head(w).started_at for w in range(4) if pool.state.slots[w].queue]
        assert pool.state.next_deadline() == pytest.approx(min(started) + 60)
    assert len(pool.state.deadlines._heap) <= 2 * 4 + 64  # finished tasks' entries dropped
    assert pool.feed(st.Tick(), now=20.9 + 59) == []
    assert ids(pool.feed(st.Tick(), now=100.0), st.KillWorker) == [0, 1, 2, 3]


def test_the_state_is_in_no_reference_cycle_so_a_closed_pools_maps_go_at_once():
    import gc
    import weakref
    gc.disable()  # what a cycle would wait for
    try:
        pool = Pool(2, task_timeout=5)
        pool.submit(make_job(range(4)))
        pool.ready(0, 1)
        assert pool.state.next_deadline() is not None
        ref = weakref.ref(pool.state)
        del pool
        assert ref() is None
    finally:
        gc.enable()


def test_no_deadline_without_task_timeout():
    pool = Pool(1, keep_alive=True)
    pool.submit(make_job(range(3)))
    pool.ready(0)
    assert pool.state.next_deadline() is None
    assert of(pool.feed(st.Tick(), now=10 ** 6), st.KillWorker) == []


def test_max_tasks_per_worker_retires_and_replaces_the_worker():
    pool = Pool(1, keep_alive=True, max_tasks_per_worker=2)
    job = make_job(range(5), chunk_size=1)
    pool.submit(job)
    pool.ready(0)
    assert dispatched(pool.done(0, elapsed=0.5)) == [(0, [1], False)]
    assert summary(pool.done(0, elapsed=0.5)) == [("RetireWorker", 0)]
    assert summary(pool.died(0, 0)) == [("StartWorker", 0)]
    out = pool.ready(0)
    assert dispatched(out) == [(0, [2], False)]
    assert of(out, st.Dispatch)[0].send_func is True  # a new process needs the function
    assert pool.state.slots[0].tasks_done == 2        # the slot's count goes on


@pytest.mark.parametrize("max_tasks", [1, 2, 3, 50])
def test_no_worker_process_runs_more_than_max_tasks(max_tasks):
    pool = Pool(2, keep_alive=True, max_tasks_per_worker=max_tasks)
    job = make_job(range(20))
    log = pool.play(pool.submit(job), per_item=2 ** -17)
    assert max(pool.items_by_pid.values()) <= max_tasks
    assert sum(pool.items_by_pid.values()) == 20
    assert len(of(log, st.RetireWorker)) >= math.ceil(20 / max_tasks) - 2
    assert finish(log).error is None
    assert job.ledger.ordered_results() == [result(i) for i in range(20)]


def test_input_iterable_raising_fails_the_map_and_keeps_what_finished():
    def source():
        yield 0, "a"
        yield 1, "b"
        raise LookupError("the input broke")

    pool = Pool(1, keep_alive=True)
    job = make_lazy_job(source(), chunk_size=1)
    pool.submit(job)
    pool.ready(0)
    pool.done(0, elapsed=0.5)
    out = pool.done(0, elapsed=0.5)
    fin = finish(out)
    assert type(fin.error) is LookupError and str(fin.error) == "the input broke"
    assert "nbpar: raised by the input iterable after 2 items" in fin.error.__notes__
    assert fin.report.status == "failed"
    assert fin.report.results == {0: result("a"), 1: result("b")}
    assert job.ledger.done == 2


def test_items_read_before_the_input_raised_still_run():
    """As multiprocessing's imap: what was read before the input failed runs and is kept;
    then the map fails with the input's error, listed in the report as an input error."""
    def source():
        yield 0, "a"
        yield 1, "b"
        raise LookupError("the input broke")

    pool = Pool(1, keep_alive=True)
    pool.submit(make_lazy_job(source(), chunk_size=3))
    out = pool.ready(0)
    assert [list(d.batch.items) for d in of(out, st.Dispatch)] == [["a", "b"]]
    assert of(out, st.FinishJob) == []             # not before the read items are done
    fin = finish(pool.done(0, elapsed=0.5))
    assert isinstance(fin.error, LookupError)
    assert fin.report.results == {0: result("a"), 1: result("b")}
    assert fin.report.pending == []
    (error,) = fin.report.errors
    assert error.index is None and error.worker_id is None and error.type == "LookupError"
    assert "input iterable raised after 2 items" in error.message


def test_an_input_error_lets_the_other_running_batches_finish():
    def source():
        yield 0, "a"
        yield 1, "b"
        raise LookupError("the input broke")

    pool = Pool(2, keep_alive=True)
    job = make_lazy_job(source(), chunk_size=1)
    pool.submit(job, now=0.0)
    pool.ready(0, now=0.0)
    pool.ready(1, now=1.0)
    out = pool.done(0, elapsed=0.5)                # w0 asks for more: the input raises
    assert ids(out, st.KillWorker) == [] and of(out, st.FinishJob) == []
    fin = finish(pool.done(1, elapsed=0.5))        # w1's item still counts
    assert isinstance(fin.error, LookupError)
    assert fin.report.results == {0: result("a"), 1: result("b")}


@pytest.mark.parametrize("keep_alive", [True, False])
def test_worker_init_failure_fails_the_map_and_does_not_restart_workers(keep_alive):
    pool = Pool(2, keep_alive=keep_alive)
    job = make_job(range(4))
    pool.submit(job)
    payload = payload_of(_no_gpu)
    log = pool.feed(st.WorkerInitFailed(0, payload))
    log += pool.ready(1)
    log += pool.died(0, 1)
    log = pool.play(log)
    fin = finish(log)
    assert type(fin.error) is OSError and str(fin.error) == "no GPU here"
    assert "nbpar: raised in worker_init on worker 0" in fin.error.__notes__
    assert isinstance(fin.error.__cause__, RemoteTraceback)
    assert of(log, st.Dispatch) == []
    assert of(log, st.StartWorker) == []           # no endless restart loop
    assert pool.feed(st.Tick(), now=100.0) == []
    # a new map tries again
    assert ids(pool.submit(make_job(range(2))), st.StartWorker) == (
        [0] if keep_alive else [0, 1])


def test_worker_dying_while_starting_fails_the_map_without_restarts():
    pool = Pool(1, keep_alive=True)
    pool.submit(make_job(range(4)))
    out = pool.died(0, 1)
    err = finish(out).error
    assert isinstance(err, WorkerDiedError) and "while starting" in str(err)
    assert of(out, st.StartWorker) == []


def test_start_failed_fails_the_map():
    pool = Pool(1, keep_alive=True)
    pool.submit(make_job(range(4)))
    boom = OSError("cannot fork")
    out = pool.feed(st.StartFailed(0, boom))
    assert finish(out).error is boom
    assert of(out, st.StartWorker) == []


# ----------------------------------------------------------------------------- the end

@pytest.mark.parametrize("keep_alive", [True, False])
def test_end_finishes_pending_work_then_retires_everyone_then_shuts_down(keep_alive):
    pool = Pool(2, keep_alive=keep_alive)
    job = make_job(range(6), chunk_size=1)
    pool.submit(job)
    pool.ready(0, 1)
    out = pool.signal(Signal.END)
    assert of(out, st.RetireWorker) == [] and of(out, st.Shutdown) == []
    log = pool.play(out)
    kinds = [type(i).__name__ for i in log]
    assert sorted(ids(log, st.RetireWorker)) == [0, 1]
    assert kinds.count("Shutdown") == 1 and kinds[-1] == "Shutdown"
    assert kinds.index("FinishJob") < kinds.index("Shutdown")
    assert finish(log).error is None
    assert job.ledger.ordered_results() == [result(i) for i in range(6)]
    assert of(log, st.StartWorker) == []
    assert pool.state.shut_down


def test_end_on_an_idle_pool_shuts_down_at_once():
    pool = Pool(2)
    assert summary(pool.signal(Signal.END)) == [("Shutdown",)]


def test_end_on_a_kept_alive_idle_pool_retires_the_workers_first():
    pool = Pool(2, keep_alive=True)
    pool.play(pool.submit(make_job([1])))
    assert [s.state for s in pool.state.slots] == ["idle", "idle"]
    assert summary(pool.signal(Signal.END)) == [("RetireWorker", 0), ("RetireWorker", 1)]
    assert pool.died(0, 0) == []
    assert summary(pool.died(1, 0)) == [("Shutdown",)]


def test_a_job_submitted_after_end_is_refused():
    pool = Pool(2)
    pool.signal(Signal.END)
    job = make_job(range(3))
    out = pool.submit(job)
    assert summary(out) == [("FinishJob", job.id, "RuntimeError")]
    assert "closed" in str(out[0].error)
    assert job.status == "failed"


# ----------------------------------------------------------------------------- schedulers

@pytest.mark.parametrize("n_workers, max_threads", [(2, 1), (3, 2), (2, 5)])
def test_max_threads_scheduler_caps_busy_workers(n_workers, max_threads):
    pool = Pool(n_workers, scheduler=MaxThreadsScheduler(max_threads), keep_alive=True)
    job = make_job(range(60))
    busy_counts = []

    def count(state):
        busy = sum(1 for s in state.slots if s.queue)
        busy_counts.append(busy)
        assert busy <= max_threads

    log = pool.play(pool.submit(job), per_item=2 ** -10, check=count)
    assert max(busy_counts) == min(n_workers, max_threads)
    assert finish(log).error is None
    assert job.ledger.ordered_results() == [result(i) for i in range(60)]


def test_max_threads_one_leaves_the_second_worker_idle():
    pool = Pool(2, scheduler=MaxThreadsScheduler(1), keep_alive=True)
    pool.submit(make_job(range(10), chunk_size=1))
    assert dispatched(pool.ready(0)) == [(0, [0], False)]
    assert pool.ready(1) == []
    assert pool.state.slots[1].state == "idle"


# ----------------------------------------------------------------------------- regressions

def test_map_with_every_item_done_finishes_even_while_halted():
    pool = Pool(2, keep_alive=True)
    job = make_job("ab", chunk_size=1)
    pool.submit(job)
    pool.ready(0, 1)                               # every item is dispatched
    pool.signal(Signal.HALT)
    pool.done(0, elapsed=0.5)
    out = pool.done(1, elapsed=0.5)
    assert pool.report().done == 2
    assert finish(out).error is None


def test_map_finishes_when_its_last_worker_retires_for_max_tasks():
    pool = Pool(1, keep_alive=True, max_tasks_per_worker=2)
    job = make_job("ab", chunk_size=1)
    pool.submit(job)
    pool.ready(0)
    pool.done(0, elapsed=0.5)
    log = pool.done(0, elapsed=0.5)                # both items done; the worker retires
    log += pool.died(0, 0)
    assert finish(log).error is None


@pytest.mark.parametrize("how", ["timeout"])  # (an input error lets them finish: above)
def test_failing_map_kills_its_other_busy_workers_in_the_same_step(how):
    def source():
        yield 0, "a"
        yield 1, "b"
        raise LookupError("the input broke")

    pool = Pool(2, keep_alive=True, task_timeout=5 if how == "timeout" else None)
    job = make_job("abcd") if how == "timeout" else make_lazy_job(source(), chunk_size=1)
    pool.submit(job, now=0.0)
    pool.ready(0, now=0.0)
    pool.ready(1, now=1.0)
    if how == "timeout":
        out = pool.feed(st.Tick(), now=5.0)        # w0 overran; w1 runs the same map
    else:
        out = pool.done(0, elapsed=0.5)            # w0 asks for more: the input raises
    assert job.stopping == "failed"
    assert 1 in ids(out, st.KillWorker)


def test_held_map_finishes_although_a_new_map_arrives_while_workers_retire():
    pool = Pool(2, keep_alive=False)
    first = make_job(range(2), chunk_size=1)
    pool.submit(first)
    pool.ready(0, 1)
    pool.done(0)
    out = pool.done(1)
    assert ids(out, st.RetireWorker) == [0, 1]     # first is held until they are gone
    second = make_job(range(100), chunk_size=1)
    log = pool.submit(second)
    log += pool.died(0, 0)
    log += pool.died(1, 0)                         # every worker of the first map is gone
    assert [f.job for f in of(log, st.FinishJob)] == [first]


@pytest.mark.parametrize("how", ["stop_rightnow", "crash"])
def test_no_replacement_worker_for_a_map_that_is_ending(how):
    pool = Pool(2, keep_alive=False)
    job = make_job(range(10), chunk_size=1)
    pool.submit(job)
    pool.ready(0, 1)
    if how == "stop_rightnow":
        log = pool.signal(Signal.STOP_RIGHTNOW) + pool.died(0, -9)
    else:
        log = pool.died(0, -11)                    # kills w1, which runs the same map
    log += pool.died(1, -9)
    assert of(log, st.StartWorker) == []
    assert finish(log).error is not None


def test_worker_exit_error_report_agrees_with_the_error():
    pool = Pool(1, keep_alive=False)
    job = make_job([1], chunk_size=1)
    pool.submit(job)
    pool.ready(0)
    pool.done(0)
    exit_error = payload_of(_explode, "exit")
    pool.feed(st.WorkerExited(0, None, exit_error))
    fin = finish(pool.died(0, 0))
    assert type(fin.error) is ValueError
    assert fin.report.status == "failed" == job.status


class _CountedJob(st.Job):
    """A Job that counts how often the state machine looks at it."""

    reads = 0

    def __getattribute__(self, name):
        _CountedJob.reads += 1
        return super().__getattribute__(name)


def _work_for_single_calls(n):
    """Attribute reads of jobs by the state machine to run n single calls, all in flight
    (the invariants are not checked: their walk over every job would be counted)."""
    p = Pool(2, keep_alive=True, validate=False)
    _CountedJob.reads = 0
    for x in range(n):
        job = _CountedJob(next(_job_ids), _task, ListSource([(x,)]),
                          Ledger(1, [(x,)], None, True), total=1, star=True, streaming=True,
                          single=True, chunker=AdaptiveChunker(None), func_key=1,
                          func_name="tests._task")
        job.handle = object()
        p.submit(job)
    finished = len(of(p.ready(0, 1), st.FinishJob))
    while any(s.queue for s in p.state.slots):
        for wid in (0, 1):
            if p.state.slots[wid].queue:
                finished += len(of(p.done(wid), st.FinishJob))
    assert finished == n and not p.state.jobs
    return _CountedJob.reads


def test_many_single_calls_in_flight_cost_work_linear_in_their_number():
    """Each event looks at the jobs it concerns, not at every job in flight (4 × the calls:
    about 4 × the work, where a walk over every job per event would make it 16 ×)."""
    small, large = _work_for_single_calls(500), _work_for_single_calls(2000)
    assert large / small < 5, (small, large)


def test_a_jobs_own_task_timeout_applies_to_its_batches_only():
    pool = Pool(2, keep_alive=True)
    timed, free = make_job(range(2)), make_job(range(2))
    timed.task_timeout = 5
    pool.submit(timed)
    pool.submit(free)
    assert dispatched(pool.ready(0, 1, now=0.0)) == [(0, [0], False), (1, [1], False)]
    assert pool.state.next_deadline() == 5.0  # the timed job's batches are one item each
    pool.done(0, now=1.0)
    pool.done(1, now=1.0)
    assert pool.state.next_deadline() is None  # only the free job's batches run now
    out = pool.feed(st.Tick(), now=100.0)
    assert not of(out, st.KillWorker)


def test_a_jobs_max_active_bounds_its_items_in_flight_and_its_lifespan_retires_workers():
    pool = Pool(2, keep_alive=True)
    job = make_job(range(6), chunk_size=1)
    job.max_active, job.lifespan = 1, 2
    pool.submit(job)
    out = pool.ready(0, 1, now=0.0)
    seen, retired = [], []
    for _ in range(50):
        seen.append(sum(len(s.queue) for s in pool.state.slots))
        busy = [s.id for s in pool.state.slots if s.queue]
        if not busy:
            break
        out = pool.done(busy[0], now=1.0)
        for instr in of(out, st.RetireWorker):
            retired.append(pool.state.slots[instr.worker_id].since_start)
            pool.died(instr.worker_id, 0)
            pool.ready(instr.worker_id)
    assert max(seen) == 1 and job.status == "finished"
    assert len(retired) >= 2 and set(retired) == {2}  # each process ran its 2 tasks, then left

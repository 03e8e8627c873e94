"""The state machine's story and its invariants.

Every event is numbered and each step (the event and the instructions it led to) is kept, as
kinds and small ids only; `validate_state` (run after every step of tests/unit's tables) names
a broken invariant. Here each invariant is broken on purpose, to see that it is named.
"""

from __future__ import annotations

import re

import pytest

from nbpar import state as st
from nbpar.signals import Signal
from nbpar.state_checks import InvalidState
from nbpar.story import STORY_LENGTH, StoryEntry, entries
from tests.unit.test_state import Pool, make_job


def test_each_event_is_numbered_and_its_step_kept_with_its_instructions():
    pool = Pool(1, keep_alive=True)
    job = make_job(range(3), chunk_size=1)
    pool.submit(job, now=1.0)
    pool.ready(0, now=2.0)
    batch = pool.head(0)
    pool.done(0, now=3.0)
    story = entries(pool.state.story)
    assert [e.stimulus_id for e in story] == [1, 2, 3]
    assert [e.time for e in story] == [1.0, 2.0, 3.0]
    assert story[0] == StoryEntry(1, 1.0, f"JobSubmitted(job_id={job.id})",
                                  ("StartWorker(worker_id=0)",))
    assert story[1].event == "WorkerReady(worker_id=0, pid=1000)"
    assert story[1].instructions == (
        f"Dispatch(worker_id=0, batch_id={batch.batch_id}, job_id={job.id})",)
    assert story[2].event == f"BatchDone(worker_id=0, batch_id={batch.batch_id})"
    assert str(story[2]).startswith(f"#3 at 3.000000: BatchDone(worker_id=0, batch_id="
                                    f"{batch.batch_id}) -> Dispatch(worker_id=0")


def test_an_event_without_instructions_says_so():
    pool = Pool(1, keep_alive=True)
    pool.feed(st.Tick(), now=0.5)
    (entry,) = entries(pool.state.story)
    assert entry.event == "Tick()" and entry.instructions == ()
    assert str(entry) == "#1 at 0.500000: Tick() -> nothing"


def test_the_story_keeps_only_its_last_steps():
    pool = Pool(1, keep_alive=True)
    for k in range(STORY_LENGTH + 5):
        pool.feed(st.Tick(), now=float(k))
    story = entries(pool.state.story)
    assert len(story) == STORY_LENGTH
    assert story[0].stimulus_id == 6 and story[-1].stimulus_id == STORY_LENGTH + 5


def test_report_requests_are_numbered_but_left_out_of_the_story():
    pool = Pool(1, keep_alive=True)
    pool.feed(st.Tick())
    request = st.ReportRequested(reply=None)  # (the reply future is the Boss's business)
    (reply,) = pool.feed(request)
    assert isinstance(reply, st.Reply) and request.stimulus_id == 2
    pool.feed(st.Tick())
    assert [e.stimulus_id for e in entries(pool.state.story)] == [1, 3]


def _small_values(obj):
    """Every value inside a raw step that is not a tuple (which it is made of)."""
    if isinstance(obj, tuple):
        for part in obj:
            yield from _small_values(part)
    else:
        yield obj


def test_the_story_keeps_no_results_items_or_maps():
    pool = Pool(2, keep_alive=True)
    job = make_job(range(20), chunk_size=3, streaming=True)
    pool.play(pool.submit(job))
    pool.signal(Signal.HALT)
    kinds = {type(v) for v in _small_values(tuple(pool.state.story))}
    assert kinds <= {int, float, str, type(None), type, Signal}, kinds


# ----------------------------------------------------------------------------- invariants

def _running_pool():
    """Two workers, each running one item of a 100-item map (its tasks have a timeout)."""
    pool = Pool(2, keep_alive=True)
    job = make_job(range(100))
    job.task_timeout = 10.0
    pool.submit(job, now=0.0)
    pool.ready(0, 1, now=0.0)
    return pool, job


def _lose_a_batch(pool, job):
    pool.state.slots[0].queue.clear()


def _requeue_a_running_item(pool, job):
    job.requeued.append(((0,), [0]))


def _count_an_item_twice(pool, job):
    job.read += 1


def _close_a_slot_with_room(pool, job):
    pool.signal(Signal.HALT)
    pool.done(0, now=1.0)  # worker 0 is idle, with room: HALT alone keeps work from it
    pool.state._open.discard(0)


def _stop_feeding(pool, job):
    pool.state._feeding.clear()


def _forget_a_deadline(pool, job):
    pool.state.deadlines._heap.clear()


def _mark_a_dead_worker_busy(pool, job):
    pool.state.slots[1].state = "dead"


def _halt_scope_without_halt(pool, job):
    pool.state.halt_scope = job.id


def _hold_back_a_running_batch(pool, job):
    pool.state.withheld[0] = pool.head(0).batch_id


BROKEN = [
    (_lose_a_batch, "in flight but not queued on worker 0"),
    (_requeue_a_running_item, "both pending and running"),
    (_count_an_item_twice, "3 items read, but 0 done + 0 failed + 2 running + 0 pending"),
    (_close_a_slot_with_room, "worker 0 has room but is not open for work"),
    (_stop_feeding, "has work left but is not feeding"),
    (_forget_a_deadline, "worker 0: its running batch's deadline is not watched"),
    (_mark_a_dead_worker_busy, "in flight on dead worker 1"),
    (_halt_scope_without_halt, "while not halted"),
    (_hold_back_a_running_batch, "held back, but not queued behind another"),
]


@pytest.mark.parametrize("corrupt, named", BROKEN, ids=[c.__name__ for c, _ in BROKEN])
def test_validate_state_names_each_broken_invariant(corrupt, named):
    pool, job = _running_pool()
    pool.state.validate_state()  # whole before
    corrupt(pool, job)
    with pytest.raises(InvalidState, match=re.escape(named)):
        pool.state.validate_state()
